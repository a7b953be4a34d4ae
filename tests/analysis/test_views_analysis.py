"""Operators, memory, exclusion of the window's steps and what-differs, on hand-made sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import make_steps
from throughput.analysis.compare import compare
from throughput.analysis.settings_diff import settings_diff
from throughput.analysis.summary import steady_steps, summarize
from throughput.cli.main import main
from throughput.report.compare import render_compare_table
from throughput.report.jsonfmt import summary_to_dict
from throughput.session.io import load_session, save_session
from throughput.session.records import Event, RunInfo
from throughput.session.session import Session


def window_session() -> Session:
    """12 steps: 1.0 s each, except the profiled ones (2-6) at 2.0 s. Window: steps 3-5 recorded."""
    phases = [{"forward": 0.6, "backward": 0.4}] * 2 + [{"forward": 1.2, "backward": 0.8}] * 5 \
        + [{"forward": 0.6, "backward": 0.4}] * 5
    events = (
        Event(kind="window", step=12, message="", detail={
            "first_step": 3, "last_step": 5, "excluded_first": 2, "excluded_last": 6, "window_wall_s": 6.0,
            "ops": True, "memory_snapshot": False}),
        Event(kind="operator", step=12, message="", detail={
            "name": "aten::mm", "phase": "forward", "self_s": 2.4, "calls": 3, "flops": 300}),
        Event(kind="operator", step=12, message="", detail={
            "name": "aten::relu", "phase": "forward", "self_s": 0.3, "calls": 3, "flops": 0}),
        Event(kind="operator", step=12, message="", detail={
            "name": "aten::mm", "phase": "backward", "self_s": 1.5, "calls": 6, "flops": 600}),
    )
    return Session(info=RunInfo(run_id="w", warmup_steps=2), steps=make_steps(phases), events=events)


def test_window_steps_are_left_out_and_operators_per_step() -> None:
    session = window_session()
    warm, measured, _ = steady_steps(session)
    assert [s.index for s in warm] == [0, 1] and [s.index for s in measured] == [7, 8, 9, 10, 11]
    summary = summarize(session)
    assert summary.step_time is not None and summary.step_time.mean_s == pytest.approx(1.0)   # no 2.0 s step
    ops = summary.operators
    assert ops is not None and ops.window_steps == (3, 5)
    # 6.0 s over 3 recorded steps = 2.0 s a step, against 1.0 s steady: 2x slower
    assert ops.window_step_s == pytest.approx(2.0) and ops.slowdown == pytest.approx(2.0)
    top = [(o.phase, o.name) for o in ops.top]
    assert top == [("forward", "aten::mm"), ("forward", "aten::relu"), ("backward", "aten::mm")]
    mm = ops.top[0]
    # 2.4 s over 3 steps = 0.8 s a step; share 2.4 / 6.0 = 40%; 3 calls / 3 steps; 300 FLOPs / 3 steps
    assert (mm.self_s, mm.share, mm.calls, mm.flops) == (pytest.approx(0.8), pytest.approx(0.4), 1.0, 100.0)
    assert mm.device_self_s is None
    as_json = summary_to_dict(summary)["operators"]
    assert as_json["window_steps"] == [3, 5]
    assert set(as_json["top"][0]) >= {"name", "phase", "self_s", "calls", "share", "device_self_s"}
    assert any("steps 2-6 ran under torch.profiler (2.00x" in n for n in summary.notes)
    assert not any(f.kind in ("window", "operator") for f in summary.findings)


def test_settings_diff_lists_what_differs() -> None:
    a = RunInfo(run_id="a", argv=("train.py", "--lr", "3e-4"), torch_version="2.13.0", device="cpu",
                device_name="EPYC", overrides={"num_workers": "2"},
                environment={"OMP_NUM_THREADS": "4", "torch.num_threads": "4", "MALLOC_ARENA_MAX": "2"})
    b = RunInfo(run_id="b", argv=("train.py", "--lr", "3e-4"), torch_version="2.13.0", device="cpu",
                device_name="EPYC", world_size=2, overrides={"num_workers": "4", "pin_memory": "true"},
                environment={"OMP_NUM_THREADS": "8", "torch.num_threads": "8", "MALLOC_ARENA_MAX": "2"})
    diffs = [(d.name, d.a, d.b) for d in settings_diff(a, b)]
    assert diffs == [("world size", "1", "2"), ("--set num_workers", "2", "4"), ("--set pin_memory", "-", "true"),
                     ("env OMP_NUM_THREADS", "4", "8"), ("env torch.num_threads", "4", "8")]
    # an older session without a recorded environment: not compared, and the comparison says so
    assert all(not d.name.startswith("env ") for d in settings_diff(a, RunInfo(run_id="c")))


def test_compare_shows_what_differs_before_the_phases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = make_steps([{"forward": 1.0}] * 4)
    a = Session(info=RunInfo(run_id="a", warmup_steps=1, environment={"OMP_NUM_THREADS": "1"}), steps=steps)
    b = Session(info=RunInfo(run_id="b", warmup_steps=1, environment={"OMP_NUM_THREADS": "2"},
                             overrides={"batch_size": "64"}), steps=steps)
    text = render_compare_table(compare(a, b))
    assert text.index("what differs:") < text.index("env OMP_NUM_THREADS") < text.index("phases that moved")
    save_session(a, tmp_path / "a.json")
    save_session(b, tmp_path / "b.json")
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"name": "--set batch_size", "a": "-", "b": "64"} in data["settings"]


def test_new_run_info_fields_survive_a_save_and_load(tmp_path: Path) -> None:
    info = RunInfo(run_id="x", overrides={"amp": "bf16"}, environment={"CUDA_VISIBLE_DEVICES": "0,1"})
    loaded = load_session(save_session(Session(info=info), tmp_path / "s.json"))
    assert loaded.info.overrides == {"amp": "bf16"}
    assert loaded.info.environment == {"CUDA_VISIBLE_DEVICES": "0,1"}


def test_profiler_records_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from throughput.capture.profiler import Profiler
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1073741824")
    monkeypatch.setenv("HOME_NOT_A_KNOB", "x")
    with Profiler(device="cpu") as prof:
        prof.step()
    env = prof.session().info.environment
    assert env["OMP_NUM_THREADS"] == "3" and env["MALLOC_TRIM_THRESHOLD_"] == "1073741824"
    assert env["torch.num_threads"] == str(torch.get_num_threads()) and "HOME_NOT_A_KNOB" not in env
