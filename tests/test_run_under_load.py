"""``tests/run_under_load.py`` (``make test-under-load``) on a one-test selection: it runs pytest, logs
the run, and stops its busy loop."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import run_under_load


def test_one_run_is_logged_and_the_spinner_is_stopped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = set(os.listdir("/proc")) if Path("/proc").is_dir() else set()
    log = tmp_path / "under_load.md"
    status = run_under_load.main(["--runs", "1", "--log", str(log), "--", "-q", "-p", "no:cacheprovider",
                                  "tests/test_validation.py", "-k", "parse_text_errors"])
    assert status == 0
    out = capsys.readouterr().out
    assert out.startswith("run 1: green in ") and "4 passed" in out and "load average" in out
    text = log.read_text()
    assert "| 1 | green |" in text and "one busy-loop process pinned to core 0" in text
    if before:                       # the spinner is gone: no process of ours is left running
        left = [p for p in set(os.listdir("/proc")) - before if p.isdigit()
                and Path(f"/proc/{p}/cmdline").exists() and "while True" in Path(f"/proc/{p}/cmdline").read_text()]
        assert left == []
