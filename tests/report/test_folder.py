"""The report folder, with and without matplotlib."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers import make_steps
from throughput.report.folder import write_report
from throughput.session import RunInfo, Session, load_session
from dataclasses import replace


def _session() -> Session:
    steps = make_steps([{"data": 0.1, "forward": 0.2, "backward": 0.3}] * 6, other_s=0.1, samples=8, tokens=512)
    steps = tuple(replace(s, loss=3.0 - 0.1 * s.index) for s in steps)
    return Session(info=RunInfo(run_id="folder", warmup_steps=1), steps=steps)


def test_folder_has_every_file_and_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = write_report(_session(), tmp_path / "r")
    names = {p.name for p in out.iterdir()}
    assert {"session.json", "summary.json", "report.md", "step_breakdown.png", "throughput.png",
            "loss.png"} <= names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "![step_breakdown](step_breakdown.png)" in (out / "report.md").read_text()
    assert load_session(out / "session.json") == _session()


def test_without_matplotlib_the_report_says_how_to_get_plots(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib -> ImportError
    out = write_report(_session(), tmp_path / "r")
    assert not list(out.glob("*.png"))
    assert "pip install 'throughput[plots]'" in (out / "report.md").read_text()
    assert (out / "summary.json").exists()
