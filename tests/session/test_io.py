"""Session JSON: round trip, and one-line errors for every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_session
from throughput.session import RunEnd, SessionFormatError, load_session, save_session
from throughput.session.io import session_to_dict


def test_round_trip(tmp_path: Path) -> None:
    session = make_session(n_steps=3, forward=0.5, backward=1.0, samples=4).with_info(end=RunEnd.MAX_STEPS)
    loaded = load_session(save_session(session, tmp_path / "s.json"))
    assert loaded == session


def test_folder_is_accepted(tmp_path: Path) -> None:
    save_session(make_session(forward=1.0), tmp_path / "session.json")
    assert load_session(tmp_path).steps[0].phase_s == {"forward": 1.0}


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("not json at all", "not JSON"),
    ('{"a": 1}', "not a throughput session"),
    ("[1, 2]", "not a throughput session"),
])
def test_bad_files_give_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SessionFormatError, match=message) as info:
        load_session(path)
    assert "\n" not in str(info.value)


def test_truncated_file(tmp_path: Path) -> None:
    text = json.dumps(session_to_dict(make_session(forward=1.0)))
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(SessionFormatError, match="truncated"):
        load_session(path)


def test_other_schema_version(tmp_path: Path) -> None:
    raw = session_to_dict(make_session(forward=1.0))
    raw["schema_version"] = 99
    path = tmp_path / "v99.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SessionFormatError, match="schema version 99 is not supported"):
        load_session(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SessionFormatError, match="no such file"):
        load_session(tmp_path / "nope.json")
    with pytest.raises(SessionFormatError, match="directory without session.json"):
        load_session(tmp_path)


def test_malformed_step(tmp_path: Path) -> None:
    raw = session_to_dict(make_session(forward=1.0))
    raw["steps"][0]["bogus_s"] = 1
    path = tmp_path / "m.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SessionFormatError, match=r"steps\[0\]: unknown field \"bogus_s\""):
        load_session(path)


def _profiled_session_file(tmp_path: Path) -> Path:
    """A real profiler's session (10 steps of 1 s by a fake clock, no warm-up), saved."""
    import throughput
    from throughput.timing.clock import FakeClock
    clock = FakeClock()
    prof = throughput.Profiler(warmup_steps=0, clock=clock, progress=False)
    for _ in range(10):
        with prof.phase("forward"):
            clock.advance(1.0)
        prof.step()
    prof.stop()
    return prof.save(tmp_path / "session.json")


@pytest.mark.parametrize("field, value, message", [
    ("steps_seen", -5, "10 kept"),
    ("steps_seen", 9, "steps_seen: 9 steps seen, fewer than the 10 kept"),
    ("sample_stride", 0, "sample_stride must be at least 1"),
    ("measured", None, "retention.measured is missing"),
])
def test_retention_fields_that_contradict_the_steps_are_refused(tmp_path: Path, field: str, value: object,
                                                                 message: str) -> None:
    path = _profiled_session_file(tmp_path)
    assert load_session(path).retention is not None          # the file as written loads
    data = json.loads(path.read_text())
    data["retention"][field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(SessionFormatError, match=message) as info:
        load_session(path)
    assert "\n" not in str(info.value)


def _edited(tmp_path: Path, edit: Any) -> Path:
    path = _profiled_session_file(tmp_path)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("edit, message", [
    # QA: steps emptied by hand read "10 total, 0 warm-up excluded, 10 measured" from the totals
    (lambda d: d.update(steps=[]), "10 steps seen but none kept"),
    (lambda d: d["retention"]["measured"].update(count=12), r"steps 0..11 measured, past the 10 steps seen"),
    # QA: 5x more padding than tokens read as a 61% padding share
    (lambda d: d["steps"][3].update(tokens=100, padding_tokens=500), r"steps\[3\].padding_tokens: 500 padding "
                                                                     r"tokens, more than the step's 100 tokens"),
])
def test_hand_edited_sessions_that_contradict_themselves_are_refused(tmp_path: Path, edit: Any, message: str) -> None:
    with pytest.raises(SessionFormatError, match=message) as info:
        load_session(_edited(tmp_path, edit))
    assert "\n" not in str(info.value)
