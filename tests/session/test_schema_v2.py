"""Schema 2 sessions (bounded capture, no phase-name cap) still load and render the same."""

from __future__ import annotations

import json
from pathlib import Path

from tests.session.old_sessions import assert_renders_as_it_did, assert_report_command_renders
from throughput.session import load_session
from throughput.session.io import READABLE_VERSIONS, SCHEMA_VERSION
from throughput.session.retention import RetentionPolicy

V2 = Path(__file__).resolve().parent.parent / "data" / "v2"


def test_a_version_2_session_renders_as_it_did() -> None:
    # session.json, report.txt and summary.json were written by throughput at schema version 2 (the commit
    # before the phase-name cap), from a fake-clock run of 12 steps with a nested custom phase.
    raw = json.loads((V2 / "session.json").read_text())
    assert raw["schema_version"] == 2 and "phase_names" not in raw["retention"]["policy"]
    assert "folded_phases" not in raw["retention"]
    assert SCHEMA_VERSION > 2 and 2 in READABLE_VERSIONS
    session = load_session(V2 / "session.json")
    assert session.retention is not None and session.retention.folded_phases is None
    assert session.retention.policy.phase_names == RetentionPolicy().phase_names   # the field's default
    summary = assert_renders_as_it_did(session, V2)
    assert not any(n.startswith("phase names:") for n in summary.notes)


def test_throughput_report_renders_a_version_2_folder() -> None:
    assert_report_command_renders(V2)
