"""Recorder arithmetic with a fake clock: every expected number is derived by hand in the test."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throughput.analysis.breakdown import phase_times
from throughput.capture.recorder import PhaseMisuseError, Recorder, StepMeta
from throughput.timing.clock import FakeClock


def test_nested_phases_are_exclusive_and_other_is_the_rest() -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    data = rec.open("data"); clock.advance(0.1); rec.close(data)           # data 0.1
    fwd = rec.open("forward"); clock.advance(0.1)                           # forward 0.1 before attention
    attn = rec.open("attention"); clock.advance(0.3); rec.close(attn)       # attention 0.3
    clock.advance(0.1); rec.close(fwd)                                      # forward +0.1 -> 0.2
    bwd = rec.open("backward"); clock.advance(0.4); rec.close(bwd)          # backward 0.4
    clock.advance(0.1)                                                      # uncovered 0.1
    opt = rec.open("optimizer"); clock.advance(0.2); rec.close(opt)         # optimizer 0.2
    clock.advance(0.1)                                                      # uncovered 0.1
    rec.end_step(StepMeta(samples=8))

    (step,), spans = rec.records()
    assert step.start_s == 0.0 and step.end_s == pytest.approx(1.4)        # 0.1+0.1+0.3+0.1+0.4+0.1+0.2+0.1
    assert step.phase_s == pytest.approx({"data": 0.1, "forward": 0.2, "attention": 0.3,
                                          "backward": 0.4, "optimizer": 0.2})
    assert step.other_s == pytest.approx(0.2)                               # 1.4 - (0.1+0.2+0.3+0.4+0.2)
    assert step.samples == 8
    assert [(s.phase, s.depth) for s in spans] == [
        ("data", 0), ("attention", 1), ("forward", 0), ("backward", 0), ("optimizer", 0)]
    assert spans[2].duration_s == pytest.approx(0.5)                        # forward span is inclusive


def test_next_step_starts_where_the_previous_ended() -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    f = rec.open("forward"); clock.advance(1.0); rec.close(f); rec.end_step()
    clock.advance(0.5)                                                      # between steps: counts as other
    f = rec.open("forward"); clock.advance(1.0); rec.close(f); rec.end_step()
    steps, _ = rec.records()
    assert [s.duration_s for s in steps] == pytest.approx([1.0, 1.5])
    assert steps[1].other_s == pytest.approx(0.5)


def test_first_step_starts_at_its_first_phase_not_at_construction() -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    clock.advance(10.0)                                                     # imports, model build...
    f = rec.open("forward"); clock.advance(1.0); rec.close(f); rec.end_step()
    (step,), _ = rec.records()
    assert step.start_s == 10.0 and step.duration_s == 1.0


def test_closing_out_of_order_is_an_error() -> None:
    rec = Recorder(FakeClock())
    outer = rec.open("forward")
    rec.open("inner")
    with pytest.raises(PhaseMisuseError, match="'forward' closed while 'inner' is still open"):
        rec.close(outer)


def test_step_inside_a_phase_is_an_error() -> None:
    rec = Recorder(FakeClock())
    rec.open("forward")
    with pytest.raises(PhaseMisuseError, match="step\\(\\) called inside phase 'forward'"):
        rec.end_step()


def test_closing_twice_is_an_error() -> None:
    rec = Recorder(FakeClock())
    f = rec.open("forward")
    rec.close(f)
    with pytest.raises(PhaseMisuseError, match="closed twice"):
        rec.close(f)


def test_span_cap_keeps_steps_complete() -> None:
    clock = FakeClock()
    rec = Recorder(clock, max_spans=3)
    for _ in range(5):
        f = rec.open("forward"); clock.advance(1.0); rec.close(f); rec.end_step()
    steps, spans = rec.records()
    assert len(steps) == 5 and len(spans) == 3 and rec.spans_dropped == 2


# A random program of phases: each item is (action, name, seconds).
_actions = st.lists(st.tuples(st.sampled_from(["open", "close", "wait", "step"]),
                              st.sampled_from(["data", "forward", "backward", "optimizer", "x"]),
                              st.floats(0.0, 2.0)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(program=_actions)
def test_shares_sum_to_one_and_no_time_is_counted_twice(program: list[tuple[str, str, float]]) -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    stack = []
    for action, name, seconds in program:
        if action == "open":
            stack.append(rec.open(name))
        elif action == "close" and stack:
            rec.close(stack.pop())
        elif action == "wait":
            clock.advance(seconds)
        elif action == "step" and not stack:
            rec.end_step()
    while stack:
        rec.close(stack.pop())
    rec.end_step()
    steps, _ = rec.records()
    total_wall = math.fsum(s.duration_s for s in steps)
    assert total_wall == pytest.approx(clock.now_s() - steps[0].start_s)   # steps tile the timeline
    for s in steps:
        times = phase_times(s)
        assert math.fsum(times.values()) == pytest.approx(s.duration_s, abs=1e-9)
        assert all(v >= -1e-12 for v in times.values())


def test_results_read_mid_run_equal_results_read_at_the_end() -> None:
    # The hot path only logs; results are replayed from the log. Reading after every step (a replay
    # per step) and reading once at the end (one replay) must give the same numbers.
    def run(read_each_step: bool) -> list[tuple[float, dict[str, float]]]:
        clock = FakeClock()
        rec = Recorder(clock)
        for i in range(40):                                   # more than DRAIN_EVERY_STEPS (32)
            d = rec.open("data"); clock.advance(0.01 * (i % 3)); rec.close(d)
            f = rec.open("forward"); clock.advance(0.02)
            a = rec.open("attention"); clock.advance(0.03); rec.close(a)
            rec.close(f)
            clock.advance(0.005)
            rec.end_step()
            if read_each_step:
                rec.step_times(i)
        return [rec.step_times(i) for i in range(40)]

    each, once = run(True), run(False)
    assert each == once
    wall_s, phases = once[4]                                  # step 4: data 0.01 x (4 % 3) = 0.01
    assert wall_s == pytest.approx(0.01 + 0.02 + 0.03 + 0.005)
    assert phases == pytest.approx({"data": 0.01, "forward": 0.02, "attention": 0.03})


def test_a_run_without_steps_does_not_grow_the_log_without_bound() -> None:
    clock = FakeClock()
    rec = Recorder(clock, max_spans=10)
    for _ in range(5000):                                     # 10,000 log entries, never a step
        f = rec.open("forward"); clock.advance(0.001); rec.close(f)
    assert len(rec._log) <= 4097                              # replayed past DRAIN_AT_LOG_ENTRIES
    # the step in progress keeps its first spans_per_step (64) spans; max_spans (10) caps the trace
    assert rec.spans_kept == 10 and rec.spans_dropped == 4990


def test_slow_steps_stay_in_the_log_until_128_steps_without_a_live_reader() -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    for _ in range(127):                                      # 127 steps of 2 s: no drain yet
        f = rec.open("forward"); clock.advance(2.0); rec.close(f); rec.end_step()
    assert len(rec._log) == 127 * 3                           # open, close, step end per step
    f = rec.open("forward"); clock.advance(2.0); rec.close(f); rec.end_step()
    assert rec._log == []                                     # the 128th step drains (DRAIN_EVERY_STEPS)


def test_a_live_reader_sees_steps_at_most_a_second_old() -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    f = rec.open("forward"); clock.advance(0.3); rec.close(f); rec.end_step()   # step 0 ends at 0.3
    rec.keep_fresh(1.0)
    f = rec.open("forward"); clock.advance(0.3); rec.close(f); rec.end_step()   # step 1 at 0.6: drains,
    assert rec._log == [] and len(rec.recent_steps()) == 2                     # next due at 1.6
    for _ in range(3):                                                         # steps 2-4 end at 0.9,
        f = rec.open("forward"); clock.advance(0.3); rec.close(f); rec.end_step()   # 1.2, 1.5
    assert len(rec._log) == 9 and len(rec.recent_steps()) == 2
    f = rec.open("forward"); clock.advance(0.3); rec.close(f); rec.end_step()   # step 5 at 1.8 >= 1.6
    assert rec._log == [] and len(rec.recent_steps()) == 6
    with pytest.raises(ValueError, match="every_s"):
        rec.keep_fresh(0.0)


def test_finished_steps_are_not_tracked_by_the_garbage_collector() -> None:
    # A full collection with torch loaded takes hundreds of ms; records that stay tracked bring it sooner.
    import gc
    clock = FakeClock()
    rec = Recorder(clock)
    for _ in range(3):
        f = rec.open("forward"); clock.advance(0.1); rec.close(f); rec.end_step(StepMeta(samples=4), loss=0.5)
    rec.step_times(0)                                         # replay the log
    for _ in range(3):                                        # each pass untracks one level of tuples:
        gc.collect()                                          # (phase, s) pairs, their tuple, the record
    held = rec.retention.warm + list(rec.retention.sampled.values()) + [s for _, _, s in rec.retention.slowest]
    assert held and not any(gc.is_tracked(v) for v in held)
