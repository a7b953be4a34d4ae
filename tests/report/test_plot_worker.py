"""Plots drawn by a child process: the same files as drawn here, failures said in one line, and a
killed child leaves no half-written image."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import make_steps
from throughput.report.folder import plot_job
from throughput.report.plot_job import PlotJob, draw, usable_cores
from throughput.report.plot_worker import PlotProcess
from throughput.session import RunInfo, Session


def _job(out: Path) -> PlotJob:
    steps = make_steps([{"data": 0.1, "forward": 0.2, "backward": 0.3}] * 6, other_s=0.1, samples=8)
    steps = tuple(replace(s, loss=3.0 - 0.1 * s.index) for s in steps)
    job = plot_job(Session(info=RunInfo(run_id="plots", warmup_steps=1), steps=steps), out)
    assert job is not None
    return job


def test_the_child_draws_the_files_drawing_here_would(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    here = draw(_job(tmp_path / "here"))
    child = PlotProcess(_job(tmp_path / "child"))
    child.start()
    if child._child is None:
        pytest.skip("one usable core: plots are drawn in the process itself")
    there = child.finish()
    assert there.missing is None and here.missing is None
    # samples (no tokens) and a loss: step breakdown, samples/s and loss plots, nothing else
    assert [p.name for p in there.files] == [p.name for p in here.files] == \
        ["step_breakdown.png", "throughput.png", "loss.png"]
    for png in there.files:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "child").iterdir() if p.name.endswith(".tmp")]


def test_a_child_that_cannot_run_falls_back_to_drawing_here(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    if usable_cores() < 2:
        pytest.skip("one usable core: plots are drawn in the process itself")
    monkeypatch.setattr(sys, "executable", "/bin/false")   # starts, exits 1 without a reply
    # Whether the job's write already meets the closed pipe (start) or only the missing reply is seen
    # (finish) depends on how fast /bin/false exits; either way the plots are drawn here.
    result = PlotProcess(_job(tmp_path)).start().finish()
    assert result.missing is None
    assert [p.name for p in result.files] == ["step_breakdown.png", "throughput.png", "loss.png"]
    assert all(p.is_file() for p in result.files)


def test_killing_the_child_removes_its_half_written_image(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    proc = PlotProcess(_job(tmp_path)).start()
    child = proc._child
    if child is None:
        pytest.skip("one usable core: plots are drawn in the process itself")
    # what the child leaves when killed mid-save: its temp file (plots._save names it by the child's pid)
    stale = tmp_path / f".step_breakdown.png.{child.pid}.tmp"
    stale.write_bytes(b"\x89PNG half")
    proc.kill()
    assert child.returncode is not None and not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
