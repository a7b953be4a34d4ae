"""Checks shared by the tests of old schema versions: a saved folder (session.json, report.txt and
summary.json written by throughput at that version) still renders as it did."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from throughput.analysis.summary import Summary, summarize
from throughput.report.console import render_table
from throughput.report.jsonfmt import summary_to_dict
from throughput.session import Session


def assert_renders_as_it_did(session: Session, folder: Path) -> Summary:
    """The table is ``folder/report.txt`` and every figure of ``folder/summary.json`` is as it was
    (later versions add keys)."""
    summary = summarize(session)
    assert render_table(summary) == (folder / "report.txt").read_text()
    then = json.loads((folder / "summary.json").read_text())
    now = summary_to_dict(summary)
    assert {k: now[k] for k in then} == then
    return summary


def assert_report_command_renders(folder: Path) -> None:
    """``throughput report folder`` prints ``folder/report.txt``."""
    out = subprocess.run([sys.executable, "-m", "throughput", "report", str(folder)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (folder / "report.txt").read_text()
