"""The Perfetto trace: structure, alignment of ranks, and size for thousands of steps."""

from __future__ import annotations

import json
from pathlib import Path

from throughput.report.trace import build_trace, write_trace
from throughput.session.records import RunInfo, Span, StepRecord, TelemetrySample
from throughput.session.session import Session

PHASES = ("data", "h2d", "forward", "backward", "optimizer", "checkpoint")


def make_session(steps: int, rank: int = 0, started_unix_s: float = 1000.0, step_s: float = 0.06) -> Session:
    """Each step: 6 phases of step_s/6 back to back, starting at origin 10.0 s."""
    origin, d = 10.0, step_s / len(PHASES)
    recs, spans = [], []
    for i in range(steps):
        start = origin + i * step_s
        recs.append(StepRecord(index=i, start_s=start, end_s=start + step_s, phase_s={p: d for p in PHASES}))
        spans += [Span(phase=p, step=i, start_s=start + k * d, end_s=start + (k + 1) * d) for k, p in enumerate(PHASES)]
    telemetry = tuple(TelemetrySample(time_s=origin + t * 0.5, source="gpu0", metric="power_w", value=300.123456)
                      for t in range(int(steps * step_s / 0.5)))
    info = RunInfo(run_id="t", rank=rank, world_size=2, origin_s=origin, started_unix_s=started_unix_s)
    return Session(info=info, steps=tuple(recs), spans=tuple(spans), telemetry=telemetry)


def test_trace_events_hand_derived() -> None:
    trace = build_trace([make_session(2), make_session(1, rank=1, started_unix_s=1000.5)])
    x = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    # rank 0: 2 step spans + 12 phase spans; rank 1: 1 + 6
    assert sum(e["pid"] == 0 for e in x) == 14 and sum(e["pid"] == 1 for e in x) == 7
    fwd1 = [e for e in x if e["pid"] == 0 and e["name"] == "forward"][1]
    # epoch time base: rank 0 started at 1000 s (Unix time) = 1_000_000_000 us; step 1 starts 0.06 s later
    # and forward is its 3rd phase of 10 ms: 1000 s + 0.06 + 0.02 = 1_000_080_000 us, 10000 us long
    assert (fwd1["ts"], fwd1["dur"]) == (1_000_080_000, 10_000)
    # rank 1 started 0.5 s (wall clock) later: its first step begins at 1000.5 s
    step0_r1 = next(e for e in x if e["pid"] == 1 and e["name"] == "step 0")
    assert step0_r1["ts"] == 1_000_500_000
    assert step0_r1["args"] == {"step": 0}          # no samples, tokens or loss in this fixture
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    assert any(n.startswith("rank 1") for n in names)
    counters = [e for e in trace["traceEvents"] if e["ph"] == "C"]
    assert counters == [] or counters[0]["args"] == {"v": 300.123}


def test_trace_of_5000_steps_stays_small(tmp_path: Path) -> None:
    session = make_session(5000, started_unix_s=1_796_000_000.0)   # a real epoch: 16-digit timestamps
    path = write_trace([session], tmp_path / "trace.json")
    size = path.stat().st_size
    events = json.loads(path.read_text())["traceEvents"]
    # 5000 steps x (6 phases + 1 step span) = 35000 complete events, 600 counters (300 s / 0.5 s), 3 metadata
    assert sum(e["ph"] == "X" for e in events) == 35_000
    assert sum(e["ph"] == "C" for e in events) == 600
    # about 70 bytes per complete event: 35000 x 70 = 2.45 MB; anything above 3 MB means the format bloated
    assert size < 3_000_000, f"trace of 5000 steps is {size / 1e6:.2f} MB"
