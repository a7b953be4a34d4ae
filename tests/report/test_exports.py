"""steps.jsonl, TensorBoard events and the merged torch.profiler trace on a hand-made session, each
read back with its own reader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from throughput.capture.tensorboard import write_tensorboard
from throughput.report.exports import write_steps_jsonl
from throughput.report.folder import write_report
from throughput.report.trace_merge import TORCH_PID_OFFSET, merge_torch_trace
from throughput.session.records import Event, RunInfo, StepRecord
from throughput.session.session import Session

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "views" / "trace_event_format.schema.json"


def session() -> Session:
    """Clock origin 100 s, started at Unix time 1_700_000_000 s. Step 0: 100.0-100.5 s (data 0.1, forward
    0.3, so other 0.1), 32 samples, loss 2.0; step 1: 100.5-101.5 s (forward 0.8), loss NaN."""
    steps = (StepRecord(index=0, start_s=100.0, end_s=100.5, phase_s={"data": 0.1, "forward": 0.3}, samples=32,
                        tokens=None, loss=2.0),
             StepRecord(index=1, start_s=100.5, end_s=101.5, phase_s={"forward": 0.8}, samples=32,
                        loss=float("nan")))
    events = (Event(kind="memory_step", step=2, message="", detail={"step": 1, "rss_bytes": 4096}),
              Event(kind="window", step=2, message="", detail={
                  "first_step": 1, "last_step": 1, "excluded_first": 1, "excluded_last": 1, "window_wall_s": 1.0,
                  "ops": True, "memory_snapshot": False, "sync_marker": "throughput.sync", "sync_s": 100.75}))
    info = RunInfo(run_id="e", origin_s=100.0, started_unix_s=1_700_000_000.0, warmup_steps=0)
    return Session(info=info, steps=steps, events=events)


def test_steps_jsonl_hand_derived(tmp_path: Path) -> None:
    path = write_steps_jsonl(session(), tmp_path / "steps.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 2
    r0, r1 = rows
    assert r0["wall_s"] == pytest.approx(0.5)
    assert r0["phases"] == pytest.approx({"data": 0.1, "forward": 0.3, "other": 0.1})   # 0.5 - 0.1 - 0.3
    assert r0["samples_per_s"] == pytest.approx(64.0)                                    # 32 / 0.5 s
    assert r0["end_unix_s"] == pytest.approx(1_700_000_000.5)                           # ends 0.5 s after origin
    assert (r0["loss"], r0["memory"], r0["measured"]) == (2.0, None, True)
    assert r1["loss"] is None                          # NaN is not JSON: written as null
    assert r1["memory"] == {"rss_bytes": 4096} and r1["measured"] is False   # the window's step


def test_tensorboard_scalars_read_back(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    write_tensorboard(session(), tmp_path / "tb")
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    wall = acc.Scalars("step/wall_s")
    assert [(e.step, e.value) for e in wall] == [(0, pytest.approx(0.5)), (1, pytest.approx(1.0))]
    assert [e.wall_time for e in wall] == [pytest.approx(1_700_000_000.5), pytest.approx(1_700_000_001.5)]
    assert [e.value for e in acc.Scalars("loss")] == [2.0]            # the NaN step has no loss scalar
    assert [e.value for e in acc.Scalars("memory/rss_bytes")] == [4096.0]
    assert [e.value for e in acc.Scalars("phase/other_s")] == [pytest.approx(0.1), pytest.approx(0.2)]


def torch_trace() -> dict[str, object]:
    """A torch.profiler trace: base 1_699_999_000 s; marker 1_000_749_990-1_000_750_010 us after it."""
    return {"baseTimeNanoseconds": 1_699_999_000 * 10**9, "traceEvents": [
        {"ph": "M", "name": "process_name", "pid": 4242, "tid": 0, "ts": 0, "args": {"name": "python"}},
        {"ph": "X", "cat": "user_annotation", "name": "throughput.sync", "pid": 4242, "tid": 4242,
         "ts": 1_000_749_990.0, "dur": 20.0},
        {"ph": "X", "cat": "kernel", "name": "gemm", "pid": 0, "tid": 7, "ts": 1_000_760_000.0, "dur": 5.0},
    ]}


def test_merged_trace_is_valid_and_on_one_time_base() -> None:
    merged = merge_torch_trace(session(), torch_trace())
    jsonschema.validate(merged, json.loads(SCHEMA.read_text()))
    events = merged["traceEvents"]
    marker = next(e for e in events if e["name"] == "throughput.sync")
    # the marker's midpoint (ts + 10 us) lands on the sync reading: 100.75 s on the run's clock is
    # 1_700_000_000 + 0.75 s = 1_700_000_000_750_000 us since the epoch
    assert marker["ts"] + 10 == pytest.approx(1_700_000_000_750_000)
    kernel = next(e for e in events if e["name"] == "gemm")
    assert kernel["ts"] - marker["ts"] == pytest.approx(1_000_760_000 - 1_000_749_990)   # spacing kept
    assert kernel["pid"] == TORCH_PID_OFFSET                    # GPU 0 does not land on rank 0's track
    step1 = next(e for e in events if e["name"] == "step 1")
    assert step1["ts"] == 1_700_000_000_500_000 and step1["args"] == {"step": 1, "samples": 32}


def test_merged_trace_without_marker_uses_torchs_base() -> None:
    plain = session()
    plain = Session(info=plain.info, steps=plain.steps)
    kernel = next(e for e in merge_torch_trace(plain, torch_trace())["traceEvents"] if e["name"] == "gemm")
    assert kernel["ts"] == pytest.approx(1_699_999_000 * 10**6 + 1_000_760_000)


def test_report_folder_writes_steps_jsonl(tmp_path: Path) -> None:
    out = write_report(session(), tmp_path / "r", plots=False)
    assert len((out / "steps.jsonl").read_text().splitlines()) == 2
    assert not (out / "trace_ops.json").exists()     # no torch trace artifact: nothing to merge
