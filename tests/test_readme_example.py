"""The README's embedded example, run as written, ends with a complete session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import throughput
from throughput.session.records import RunEnd

README = Path(__file__).resolve().parent.parent / "README.md"


def embedded_example() -> str:
    section = README.read_text().split("## Embedding the profiler in your own loop", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "README lost its embedded example"
    return match.group(1)


def test_the_embedded_example_ends_with_a_complete_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(embedded_example(), str(README), "exec"), namespace)
    session = throughput.load_session(tmp_path / "run.json")
    assert session.info.end is RunEnd.COMPLETED and len(session.steps) == 256 // 16
    assert capsys.readouterr().out.strip()                   # the verdict headline was printed
    with throughput.Profiler() as again:                      # the first run is over: a new one starts
        again.step()
