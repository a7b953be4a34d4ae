"""Schema 1 sessions (every step in full, no retention record) still load and render the same."""

from __future__ import annotations

import json
from pathlib import Path

from tests.session.old_sessions import assert_renders_as_it_did, assert_report_command_renders
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
    assert_renders_as_it_did(session, V1)


def test_throughput_report_renders_a_version_1_folder() -> None:
    assert_report_command_renders(V1)
