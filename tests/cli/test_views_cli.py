"""`throughput profile --ops` on a real script in a real subprocess: the matmul leads the forward, the
window's steps are left out of the figures, and every file the report folder gains reads back."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.cli.profile_helpers import REPO, load_json, run_plain, run_profiled

WORKLOAD = REPO / "benchmarks" / "_ops_workload.py"
SCHEMA = REPO / "tests" / "data" / "views" / "trace_event_format.schema.json"
ARGS = ("--steps", "12", "--width", "2048", "--batch", "64")


@pytest.fixture(scope="module")
def ops_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("ops") / "report"
    proc = run_profiled(WORKLOAD, ARGS, out=out, options=("--ops", "3", "--tensorboard", str(out / "tb")), plots=True)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout + proc.stderr


def test_matmul_ranks_first_in_forward_and_the_window_is_left_out(ops_run: tuple[Path, str]) -> None:
    out, _ = ops_run
    summary = load_json(out / "summary.json")
    ops = summary["operators"]
    # warm-up steps 0-1, profiler warm-up step 2, recorded steps 3-5, step 6 pays for stopping it
    assert ops["window_steps"] == [3, 5]
    forward = [o for o in ops["top"] if o["phase"] == "forward"]
    assert forward[0]["name"] == "aten::mm"
    assert forward[0]["calls"] == 1.0                      # one Linear(2048, 2048, bias=False) call a step
    assert forward[0]["device_self_s"] is None              # CPU run
    # 2 x 64 x 2048 x 2048 FLOPs a step, as torch counts them for aten::mm
    assert forward[0]["flops"] == 2 * 64 * 2048 * 2048
    # 12 steps: 2 warm-up, steps 2-6 excluded, 7-11 measured
    assert summary["steps"] == {"total": 12, "warmup": 2, "measured": 5}
    assert any("left out of the steady-state figures" in n for n in summary["notes"])
    assert "## Top operators per phase" in (out / "report.md").read_text()
    assert "## Memory per phase" in (out / "report.md").read_text()
    assert (out / "memory.png").stat().st_size > 0 and (out / "torch_trace.json").is_file()


def test_script_output_is_unchanged_under_the_window(ops_run: tuple[Path, str]) -> None:
    _, output = ops_run
    plain = run_plain(WORKLOAD, ARGS)
    assert plain.returncode == 0
    assert plain.stdout in output                         # the same loss, to the last digit
    assert "profiler_start" not in output                 # kineto's own log lines were kept quiet


def test_steps_jsonl_reads_back(ops_run: tuple[Path, str]) -> None:
    out, _ = ops_run
    rows = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(12))
    for r in rows:
        assert sum(r["phases"].values()) == pytest.approx(r["wall_s"])     # phases + other tile the step
        assert r["samples"] == 64 and r["tokens"] is None
        assert r["samples_per_s"] == pytest.approx(64 / r["wall_s"])
    assert [r["measured"] for r in rows] == [False] * 7 + [True] * 5
    assert all(r["memory"] is not None for r in rows[3:6])   # the window's steps have RSS readings
    assert rows[-1]["loss"] is not None


def test_tensorboard_events_read_back_with_tensorboards_reader(ops_run: tuple[Path, str]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out, output = ops_run
    assert f"tensorboard: {out / 'tb'}" in output
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    rows = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    wall = acc.Scalars("step/wall_s")
    assert [e.step for e in wall] == [r["index"] for r in rows]
    assert [e.value for e in wall] == pytest.approx([r["wall_s"] for r in rows], rel=1e-6)   # float32 events
    assert [e.value for e in acc.Scalars("phase/forward_s")] == pytest.approx(
        [r["phases"]["forward"] for r in rows], rel=1e-6)
    assert {"loss", "throughput/samples_per_s", "phase/other_s"} <= set(acc.Tags()["scalars"])


def test_traces_are_valid_trace_event_format_and_aligned(ops_run: tuple[Path, str]) -> None:
    out, _ = ops_run
    schema = json.loads(SCHEMA.read_text())
    trace = load_json(out / "trace.json")
    merged = load_json(out / "trace_ops.json")
    for doc in (trace, merged):
        jsonschema.validate(doc, schema)
    ops = [e for e in trace["traceEvents"] if e.get("cat") == "operator"]
    assert {e["args"]["phase"] for e in ops} >= {"forward", "backward"}
    assert any(e["name"] == "aten::linear" and e["args"]["phase"] == "forward" for e in ops)
    # torch's own event for the same operator call lands on ours (one time base) within 50 us
    ours = next(e for e in ops if e["name"] == "aten::linear")
    theirs = [e for e in merged["traceEvents"] if e.get("name") == "aten::linear" and e.get("cat") == "cpu_op"]
    assert min(abs(e["ts"] - ours["ts"]) for e in theirs) < 50
    threads = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "thread_name"}
    assert threads == {"steps and phases", "operators (torch.profiler window)"}


def test_ops_takes_an_optional_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from throughput.cli.main import main
    from throughput.cli.profile_cmd import options_parser, split_argv
    ours, rest = split_argv(["--ops", "train.py", "--lr", "1"])
    assert ours == ["--ops"] and rest == ["train.py", "--lr", "1"]
    assert options_parser().parse_args(ours).ops == 5
    ours, rest = split_argv(["--ops", "7", "train.py"])
    assert options_parser().parse_args(ours).ops == 7 and rest == ["train.py"]
    assert main(["profile", "--ops", "0", "--out", str(tmp_path / "r"), str(WORKLOAD)]) == 2
    assert "argument --ops: must be >= 1, got 0" in capsys.readouterr().err


def test_terminal_says_where_the_flame_graph_is(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from throughput.cli.views_opts import after_report
    from throughput.session.records import RunInfo
    from throughput.session.session import Session
    session = Session(info=RunInfo(run_id="p"), artifacts=("out/pyspy.speedscope.json", "out/memory_snapshot.pickle"))
    after_report(session, argparse.Namespace(tensorboard=None), quiet=False)
    err = capsys.readouterr().err
    assert "py-spy flame graph: out/pyspy.speedscope.json (open at https://www.speedscope.app)" in err
    assert "memory snapshot: out/memory_snapshot.pickle (open at https://pytorch.org/memory_viz)" in err
    after_report(session, argparse.Namespace(tensorboard=None), quiet=True)
    assert capsys.readouterr().err == ""
