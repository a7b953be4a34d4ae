"""Bounded retention: a million steps in constant memory, what is kept, and exact totals.

Durations are powers of two (2**-10 s, 2**-8 s, 2**-13 s) so that every clock reading and every
sum below is exact in floating point and the expected numbers are plain arithmetic.
"""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throughput.analysis.measured import measure_steps, steady_state
from throughput.analysis.summary import summarize
from throughput.capture import recorder as recorder_module
from throughput.capture import retention as retention_module
from throughput.capture.recorder import Recorder, StepMeta
from throughput.session.records import RunInfo
from throughput.session.retention import Retention, RetentionPolicy
from throughput.session.session import Session
from throughput.session.sketch import RELATIVE_ACCURACY
from throughput.timing.clock import FakeClock

FAST, SLOW, GAP = 2.0 ** -10, 2.0 ** -8, 2.0 ** -13


def _session(rec: Recorder, warmup: int) -> Session:
    snap = rec.snapshot()
    retention = Retention(policy=rec.policy, steps_seen=snap.steps_seen, sample_stride=snap.stride,
                          measured=snap.measured, loss=snap.loss, spans_seen=snap.spans_seen,
                          span_totals=snap.span_totals)
    return Session(info=RunInfo(run_id="t", warmup_steps=warmup), steps=snap.steps, spans=snap.spans,
                   retention=retention)


def test_a_million_steps_in_constant_memory() -> None:
    clock = FakeClock()
    rec = Recorder(clock, warmup_steps=2)
    advance = clock.advance
    n, traced_from = 1_000_000, 900_000
    growth = None
    for i in range(n):
        if i == traced_from:            # long after every cap is full: nothing may grow from here on
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
        f = rec.open("forward")
        advance(SLOW if i % 1000 == 999 else FAST)
        rec.close(f)
        advance(GAP)
        rec.end_step()
    growth = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert growth < 512 * 1024, f"{growth} bytes held by the last 100,000 steps"

    snap = rec.snapshot()
    policy = rec.policy
    # kept: 2 warm-up + at most 512 recent + 64 slowest + 2049 on the thinning grid
    assert len(snap.steps) <= 2 + policy.recent_steps + policy.slowest_steps + policy.sampled_steps + 1
    assert [s.index for s in snap.steps[-512:]] == list(range(n - 512, n))       # the last window
    slow = {s.index for s in snap.steps if s.duration_s == SLOW + GAP}
    assert len(slow) >= policy.slowest_steps                                    # 1000 slow steps seen
    t = snap.measured
    assert t is not None and t.count == n - 2 and snap.steps_seen == n
    # 1000 steps are slow (i % 1000 == 999); none of them is a warm-up step
    assert math.fsum(t.duration_s.total) == 1000 * (SLOW + GAP) + (n - 2 - 1000) * (FAST + GAP)
    assert math.fsum(t.phase_s["other"].total) == (n - 2) * GAP
    assert t.duration_s.max == SLOW + GAP and t.duration_s.min == FAST + GAP


@settings(max_examples=25, deadline=None)
@given(program=st.lists(st.sampled_from(["data", "forward", "backward", "forward"]), min_size=0, max_size=4),
       lengths=st.lists(st.integers(0, 64), min_size=1, max_size=300), warmup=st.integers(0, 5))
def test_the_fast_drain_gives_the_numbers_of_the_replay(program: list[str], lengths: list[int],
                                                        warmup: int) -> None:
    def run(fast: bool) -> Session:
        clock = FakeClock()
        rec = Recorder(clock, warmup_steps=warmup, retention=RetentionPolicy(recent_steps=16, slowest_steps=4,
                                                                             sampled_steps=8))
        if not fast:
            rec._split_log = lambda entries, end, start: len(entries)   # every entry replayed
        for i, length in enumerate(lengths):
            for name in program:
                f = rec.open(name)
                clock.advance(length * 2.0 ** -12 + 0.1)
                rec.close(f)
            clock.advance(2.0 ** -11)
            rec.end_step(StepMeta(samples=i % 3), loss=float(length))
        return _session(rec, warmup)

    fast, slow = run(True), run(False)
    assert fast.steps == slow.steps and fast.spans == slow.spans
    assert fast.retention is not None and slow.retention is not None
    assert fast.retention.measured == slow.retention.measured and fast.retention.loss == slow.retention.loss


# Steps of a run whose steps differ now and then: the usual one, one with an extra fetch (an epoch's
# end), one with a nested phase, one without phases. "|" drains the log there (a result read mid-step).
USUAL = ["data", "forward", "backward"]
STEP_KINDS = {"usual": USUAL, "extra": ["data"] + USUAL, "nested": ["forward>inner", "backward"], "empty": []}


@st.composite
def _mixed_runs(draw: st.DrawFn) -> tuple[list[str], set[int]]:
    kinds = draw(st.lists(st.sampled_from(["usual"] * 6 + ["extra", "nested", "empty"]), min_size=1, max_size=300))
    drains = draw(st.sets(st.integers(-len(kinds), len(kinds) - 1), max_size=8))
    return kinds, drains


@settings(max_examples=60, deadline=None)
@given(run=_mixed_runs(), lengths=st.lists(st.integers(0, 64), min_size=1), python_split=st.booleans())
def test_mixed_logs_give_the_numbers_of_the_replay(run: tuple[list[str], set[int]], lengths: list[int],
                                                   python_split: bool) -> None:
    """Runs of uniform steps go through the fast drain, the odd steps between them through the replay;
    with drains inside a phase (step i in ``drains``) and between two phases (-i - 1 in ``drains``), the
    result equals replaying every entry one by one."""
    kinds, drains = run

    def record(fast: bool) -> Session:
        clock = FakeClock()
        rec = Recorder(clock, warmup_steps=1, retention=RetentionPolicy(recent_steps=16, slowest_steps=4,
                                                                        sampled_steps=8))
        if not fast:
            rec._split_log = lambda entries, end, start: len(entries)   # every entry replayed
        elif python_split:
            rec._split_log = recorder_module.split_log
        for i, kind in enumerate(kinds):
            tick = lengths[i % len(lengths)] * 2.0 ** -12 + 0.125
            for name in STEP_KINDS[kind]:
                outer, _, inner = name.partition(">")
                f = rec.open(outer)
                clock.advance(tick)
                if i in drains:
                    rec._drain()                   # mid-phase, as a reader of results would
                if inner:
                    g = rec.open(inner)
                    clock.advance(tick)
                    rec.close(g)
                rec.close(f)
                if -i - 1 in drains:
                    rec._drain()                   # between two phases of a step
            clock.advance(2.0 ** -11)
            rec.end_step(StepMeta(samples=i % 3), loss=float(i))
        return _session(rec, 1)

    fast, slow = record(True), record(False)
    assert fast.steps == slow.steps and fast.spans == slow.spans
    assert fast.retention is not None and slow.retention is not None
    assert fast.retention.measured == slow.retention.measured and fast.retention.loss == slow.retention.loss
    assert fast.retention.span_totals == slow.retention.span_totals


def test_kept_steps_include_the_slowest_and_the_last_window() -> None:
    clock = FakeClock()
    rec = Recorder(clock, warmup_steps=2, retention=RetentionPolicy(recent_steps=100, slowest_steps=10,
                                                                    sampled_steps=64))
    slow_steps = {137, 1500, 2222, 4096, 9000}
    for i in range(10_000):
        f = rec.open("forward")
        clock.advance(SLOW * (4 + i % 7) if i in slow_steps else FAST)
        rec.close(f)
        rec.end_step()
    kept = [s.index for s in rec.snapshot().steps]
    assert slow_steps <= set(kept)
    assert kept[-100:] == list(range(9900, 10_000))
    assert {0, 1} <= set(kept)                                   # the warm-up
    stride = rec.retention.stride                                # 10,000 steps on <= 64 grid points
    assert stride == 256 and {i for i in kept if i % stride == 0} == set(range(0, 10_000, 256))


def test_grid_steps_left_in_their_batches_read_as_the_built_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to LAZY_MAX_STRIDE the thinning grid's steps stay rows of their fast-drain batches and are
    built when read; past it they are built as they come. Kept steps, lookups and the stride are those
    of a run that builds every grid step at once (LAZY_MAX_STRIDE 0), before and after the switch."""
    def run(lazy_max_stride: int) -> tuple[list[object], list[int]]:
        monkeypatch.setattr(retention_module, "LAZY_MAX_STRIDE", lazy_max_stride)
        clock = FakeClock()
        rec = Recorder(clock, warmup_steps=2, retention=RetentionPolicy(recent_steps=8, slowest_steps=4,
                                                                        sampled_steps=16))
        seen: list[object] = []
        lazy_rows: list[int] = []
        for i in range(600):
            for name, k in (("data", 1 + i % 3), ("forward", 2 + (i * 5) % 7)):
                f = rec.open(name)
                clock.advance(k * FAST)
                rec.close(f)
            rec.end_step(StepMeta(samples=i % 4), loss=float(i))
            if i in (20, 45, 70, 599):   # strides 2, 4, 8 (the switch) and 64 after these steps
                snap = rec.snapshot()
                seen += [snap.stride, snap.steps, [rec.retention.find(j) for j in range(i + 1)]]
                lazy_rows.append(rec.retention.lazy_count)
        return seen, lazy_rows

    (lazy, lazy_rows), (built, built_rows) = run(retention_module.LAZY_MAX_STRIDE), run(0)
    assert lazy == built
    assert lazy[0::3] == [2, 4, 8, 64]
    assert lazy_rows[:2] == [10, 11] and lazy_rows[2:] == [0, 0] and built_rows == [0, 0, 0, 0]


def test_totals_equal_the_full_records_and_quantiles_stay_within_the_bound() -> None:
    def run(policy: RetentionPolicy) -> Session:
        clock = FakeClock()
        rec = Recorder(clock, warmup_steps=3, retention=policy)
        for i in range(5000):
            for name, k in (("data", i % 5), ("forward", 3 + i % 11), ("backward", 7 + (i * 7) % 13)):
                f = rec.open(name)
                clock.advance(k * 2.0 ** -12)
                rec.close(f)
            clock.advance(2.0 ** -14 * (i % 3))
            rec.end_step(StepMeta(samples=8, tokens=8 * (100 + i % 9)))
        return _session(rec, 3)

    full = run(RetentionPolicy(sampled_steps=10_000))
    small = run(RetentionPolicy(recent_steps=50, slowest_steps=5, sampled_steps=100))
    assert full.complete and not small.complete
    a, b = summarize(full), summarize(small)
    assert (a.steps_total, a.steps_measured, a.rates, a.mfu) == (b.steps_total, b.steps_measured, b.rates, b.mfu)
    assert a.step_time is not None and b.step_time is not None
    exact = ("count", "mean_s", "min_s", "max_s", "std_s")
    assert [getattr(a.step_time, k) for k in exact] == [getattr(b.step_time, k) for k in exact]
    for pa, pb in zip(a.phases, b.phases):
        assert (pa.phase, pa.total_s, pa.mean_s, pa.share) == (pb.phase, pb.total_s, pb.mean_s, pb.share)
    durations = sorted(s.duration_s for s in full.steps[3:])
    for q, got in ((0.05, b.step_time.p5_s), (0.5, b.step_time.median_s), (0.95, b.step_time.p95_s)):
        rank = q * (len(durations) - 1)
        lo, hi = durations[math.floor(rank)], durations[math.ceil(rank)]
        assert (1 - RELATIVE_ACCURACY) * lo * (1 - 1e-12) <= got <= (1 + RELATIVE_ACCURACY) * hi * (1 + 1e-12)


def test_a_bounded_session_takes_a_shorter_warmup_but_not_a_longer_one() -> None:
    clock = FakeClock()
    rec = Recorder(clock, warmup_steps=4, retention=RetentionPolicy(recent_steps=10, slowest_steps=2,
                                                                    sampled_steps=8))
    for i in range(1000):
        f = rec.open("forward")
        clock.advance(SLOW if i < 4 else FAST)       # the 4 warm-up steps are slow
        rec.close(f)
        rec.end_step()
    session = _session(rec, 4)
    shorter = steady_state(session.with_info(warmup_steps=1))[1]
    assert shorter is not None and shorter.count == 999
    assert shorter.wall_s == 3 * SLOW + 996 * FAST and shorter.durations.max_s == SLOW
    with pytest.raises(ValueError, match="lowered but not raised"):
        steady_state(session.with_info(warmup_steps=5))
    complete = measure_steps(())
    assert complete is None


def test_a_saved_bounded_session_renders_the_live_numbers(tmp_path: Path) -> None:
    from throughput.analysis.compare import compare
    from throughput.capture.profiler import Profiler
    from throughput.report.jsonfmt import summary_to_dict
    from throughput.session.io import load_session, save_session

    clock = FakeClock()
    prof = Profiler(clock=clock, warmup_steps=2, device="cpu", progress=False,
                    retention=RetentionPolicy(recent_steps=20, slowest_steps=4, sampled_steps=16))
    for i in range(3000):
        with prof.phase("forward"):
            clock.advance(FAST if i % 10 else SLOW)
        with prof.phase("backward"):
            clock.advance(2 * FAST)
        prof.step(samples=4, loss=1.0 / (1 + i))
    live = prof.stop()
    assert not live.complete and live.steps_seen == 3000
    loaded = load_session(save_session(live, tmp_path / "session.json"))
    assert loaded == live
    assert summary_to_dict(summarize(loaded)) == summary_to_dict(summarize(live))
    assert compare(live, loaded).speedup == 1.0
    assert any("long run: per-step detail kept" in n for n in summarize(loaded).notes)


def test_telemetry_and_events_stay_within_their_caps() -> None:
    from throughput.capture.retention import EventStore, TelemetryStore
    from throughput.session.records import Event, TelemetrySample

    policy = RetentionPolicy(telemetry_samples=8, telemetry_series=3, events_per_kind=2)
    store = TelemetryStore(policy)
    # one series of 1000 samples valued 0..999, then 5 short-lived worker sources of one sample each
    store.add(TelemetrySample(time_s=float(i), source="main", metric="rss_bytes", value=float(i)) for i in range(1000))
    store.add(TelemetrySample(time_s=0.0, source=f"worker:{pid}", metric="cpu_percent", value=10.0)
              for pid in range(5))
    kept = [s for s in store.kept() if s.source == "main"]
    assert len(kept) <= 8 and [s.value for s in kept] == [float(i) for i in range(0, 1000, 128)]
    totals = {(t.source, t.metric): t for t in store.totals()}
    main = totals[("main", "rss_bytes")]
    assert (main.count, main.total, main.min, main.max) == (1000, 999 * 1000 / 2, 0.0, 999.0)
    assert main.distinct == ()                                    # more than 16 distinct values
    # series 2 and 3 are worker:0 and worker:1; workers 2..4 fold into worker:others
    assert totals[("worker:others", "cpu_percent")].count == 3
    assert totals[("worker:others", "cpu_percent")].distinct == (10.0,)
    events = EventStore(policy)
    for i in range(5):
        events.add(Event(kind="context", step=i, message="m"))
    assert len(events.kept) == 2 and events.dropped == 3


@pytest.mark.cuda
def test_device_losses_are_read_without_a_wait_and_all_counted() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from throughput.capture.profiler import Profiler

    prof = Profiler(device="cuda", warmup_steps=2, progress=False,
                    retention=RetentionPolicy(recent_steps=50, slowest_steps=5, sampled_steps=32))
    x = torch.ones(64, 64, device="cuda")
    for i in range(1000):
        with prof.phase("forward"):
            loss = (x * (i + 1)).mean()            # loss of step i is i + 1, exactly
        prof.step(loss=loss)
    session = prof.stop()
    assert session.retention is not None
    loss = session.retention.loss
    assert (loss.count, loss.first, loss.min, loss.max, loss.last) == (1000, 1.0, 1.0, 1000.0, 1000.0)
    assert all(s.loss == s.index + 1 for s in session.steps)


def test_observers_see_the_inlined_phase_paths() -> None:
    from throughput.capture.profiler import Profiler

    seen: list[tuple[str, str, float]] = []

    class Observer:
        def opened(self, phase: str, now_s: float) -> None:
            seen.append(("open", phase, now_s))

        def closed(self, phase: str, now_s: float) -> None:
            seen.append(("close", phase, now_s))

    clock = FakeClock()
    prof = Profiler(clock=clock, device="cpu", progress=False)
    for _ in prof.iter([1, 2]):                 # Recorder.iterate and RecordedPhase, observed on item 2
        if prof.steps_done == 1:
            prof.recorder.observe(Observer())
        with prof.phase("forward"):
            clock.advance(FAST)
        prof.step()
    prof.recorder.observe(None)
    with prof.phase("forward"):                 # no longer observed
        clock.advance(FAST)
    prof.step()
    prof.stop()
    # step 1's forward opened at FAST (after step 0's forward), closed at 2 FAST; then the wait for
    # the end of the list (data) opened and closed at 2 FAST
    assert seen == [("open", "forward", FAST), ("close", "forward", 2 * FAST),
                    ("open", "data", 2 * FAST), ("close", "data", 2 * FAST)]
