"""Schema 1 sessions (every step in full, no retention record) still load and render the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from throughput.analysis.summary import summarize
from throughput.report.console import render_table
from throughput.report.jsonfmt import summary_to_dict
from throughput.session import load_session

V1 = Path(__file__).resolve().parent.parent / "data" / "v1"


def test_a_version_1_session_renders_as_it_did() -> None:
    # session.json, report.txt and summary.json were written by throughput at schema version 1
    # (the commit before schema 2), from a fake-clock run of 12 steps. Two texts were updated since, by
    # deliberate later changes, not by the schema: the verdict's precision rule (a run that did not record
    # the CPU's bf16 support gets no bf16 advice) and the FLOP counter's module path in the MFU reason.
    raw = json.loads((V1 / "session.json").read_text())
    assert raw["schema_version"] == 1 and "retention" not in raw
    session = load_session(V1 / "session.json")
    assert session.retention is None and session.complete and len(session.steps) == 12
    summary = summarize(session)
    assert render_table(summary) == (V1 / "report.txt").read_text()
    then = json.loads((V1 / "summary.json").read_text())
    now = summary_to_dict(summary)
    assert {k: now[k] for k in then} == then     # every figure as it was (later versions add keys)


def test_throughput_report_renders_a_version_1_folder() -> None:
    out = subprocess.run([sys.executable, "-m", "throughput", "report", str(V1)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (V1 / "report.txt").read_text()
