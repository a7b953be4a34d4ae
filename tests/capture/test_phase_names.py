"""The phase-name cap: a script that builds phase names from the step number stays bounded.

Times are powers of two (each step: ``fwd`` 2**-2 s, then its named phase 2**-1 s, then 2**-3 s
outside any phase), so every clock reading and every sum below is exact in floating point.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

import throughput
from tests.timing.fake_cuda import FakeDevice
from throughput.analysis.summary import summarize
from throughput.capture import profiler as profiler_module
from throughput.capture.profiler import Profiler
from throughput.capture.recorder import PURE_PYTHON_ENV, Recorder
from throughput.capture.retention import PhaseNamesCapped
from throughput.report.markdown import render_markdown
from throughput.session import STANDARD_PHASES, load_session, save_session
from throughput.session.retention import FOLDED_COUNT_MAX, FOLDED_EXAMPLES, FOLDED_PHASE, RetentionPolicy
from throughput.timing.clock import FakeClock

FWD, NAMED, GAP = 2.0 ** -2, 2.0 ** -1, 2.0 ** -3
CAP = 16

Enter = Callable[[Profiler, str], Any]   # a phase context manager, whichever way it is entered
ENTRIES: dict[str, Enter] = {
    "Profiler.phase": lambda prof, name: prof.phase(name),
    "throughput.phase": lambda prof, name: throughput.phase(name),   # through Recorder.open
}


def _run(prof: Profiler, clock: FakeClock, steps: int, enter: Enter, name: Callable[[int], str]) -> None:
    for i in range(steps):
        with enter(prof, "fwd"):
            clock.advance(FWD)
        with enter(prof, name(i)):
            clock.advance(NAMED)
        clock.advance(GAP)
        prof.step()


def _started(clock: FakeClock, cap: int = CAP) -> Profiler:
    """A started fake-clock profiler with at most ``cap`` phase names."""
    prof = Profiler(clock=clock, device="cpu", warmup_steps=0, progress=False,
                    retention=RetentionPolicy(phase_names=cap))
    prof.start()
    return prof


def _per_name_structures(prof: Profiler) -> dict[str, int]:
    """Entries of every structure of the run that holds one entry per phase name (running profiler)."""
    rec = prof.recorder
    rec.snapshot()   # drains, and folds waiting steps into the totals
    return {"recorder totals": len(rec.retention.totals.phases),
            "span totals": len(rec.retention.span_totals),
            "profiler phase objects": len(prof._fast_phases or {}) + len(prof._phase_contexts)}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("pure_python", [False, True])
def test_ten_thousand_unique_names_stay_within_the_cap(entry: str, pure_python: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if pure_python:
        monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    clock, n = FakeClock(), 10_000
    prof = _started(clock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PhaseNamesCapped)
        _run(prof, clock, n, ENTRIES[entry], lambda i: f"p{i}")
    sizes = _per_name_structures(prof)
    session = prof.stop()

    # Recorded names: fwd and p0 .. p14 (16, the cap), then FOLDED_PHASE; the totals add the derived "other".
    assert sizes["span totals"] <= CAP + 1
    assert sizes["recorder totals"] <= CAP + 1 + 1
    assert sizes["profiler phase objects"] <= CAP + 1
    totals = session.retention.measured if session.retention is not None else None
    assert totals is not None and set(totals.phase_s) == {"fwd", *(f"p{i}" for i in range(CAP - 1)), FOLDED_PHASE,
                                                          "other"}
    # p15 .. p9999 are folded: 10,000 - 15 steps of 2**-1 s each, and nothing is lost from any step.
    assert math.fsum(totals.phase_s[FOLDED_PHASE].total) == (n - (CAP - 1)) * NAMED
    assert all(math.fsum(totals.phase_s[f"p{i}"].total) == NAMED for i in range(CAP - 1))
    assert math.fsum(totals.phase_s["fwd"].total) == n * FWD
    assert math.fsum(totals.phase_s["other"].total) == n * GAP
    assert math.fsum(totals.duration_s.total) == n * (FWD + NAMED + GAP)
    last = session.steps[-1]
    assert last.phase_s == {"fwd": FWD, FOLDED_PHASE: NAMED}


def test_the_folded_names_are_counted_and_the_first_ones_kept() -> None:
    clock = FakeClock()
    prof = _started(clock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PhaseNamesCapped)
        _run(prof, clock, 100, ENTRIES["Profiler.phase"], lambda i: f"bucket{i % 40}")   # 40 names, twice and a half
    session = prof.stop()
    folded = session.retention.folded_phases if session.retention is not None else None
    # fwd and bucket0 .. bucket14 fill the cap of 16; bucket15 .. bucket39 (25 names) are folded, each once
    assert folded is not None and folded.names == 40 - (CAP - 1) and not folded.more
    assert folded.examples == tuple(f"bucket{i}" for i in range(CAP - 1, CAP - 1 + FOLDED_EXAMPLES))


def test_past_the_counting_bound_the_count_says_more() -> None:
    clock = FakeClock()
    rec = Recorder(clock, retention=RetentionPolicy(phase_names=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PhaseNamesCapped)
        for i in range(FOLDED_COUNT_MAX + 5):
            rec.close(rec.open(f"p{i}"))
            rec.end_step()
    folded = rec.snapshot().folded_phases
    assert folded is not None and folded.names == FOLDED_COUNT_MAX and folded.more


def test_the_warning_fires_once_when_the_cap_is_hit() -> None:
    clock = FakeClock()
    prof = _started(clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(prof, clock, CAP - 1, ENTRIES["Profiler.phase"], lambda i: f"p{i}")   # fwd + 15 names: the cap
        assert not caught
        _run(prof, clock, 200, ENTRIES["throughput.phase"], lambda i: f"q{i}")
    prof.stop()
    assert [w.category for w in caught] == [PhaseNamesCapped]
    assert caught[0].filename == __file__   # the script's line that named the phase, not ours
    assert "'q0'" in str(caught[0].message) and FOLDED_PHASE in str(caught[0].message)


def test_under_warnings_as_errors_the_run_goes_on() -> None:
    clock = FakeClock()
    prof = _started(clock, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(prof, clock, 3, ENTRIES["Profiler.phase"], lambda i: f"p{i}")
    session = prof.stop()
    assert [s.phase_s for s in session.steps][-1] == {"fwd": FWD, FOLDED_PHASE: NAMED}


def test_standard_phases_are_never_folded_nor_counted() -> None:
    clock = FakeClock()
    prof = _started(clock, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PhaseNamesCapped)
        for name in ("mine", "theirs", "backward", "optimizer"):
            with prof.phase(name):
                clock.advance(FWD)
        prof.step()
    (step,) = prof.stop().steps
    assert step.phase_s == {"mine": FWD, FOLDED_PHASE: FWD, "backward": FWD, "optimizer": FWD}


def test_device_timed_runs_are_capped_too() -> None:
    clock, dev = FakeClock(), FakeDevice()
    prof = Profiler(clock=clock, event_factory=dev.factory, warmup_steps=0, progress=False,
                    retention=RetentionPolicy(phase_names=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PhaseNamesCapped)
        for i in range(5):
            with prof.phase(f"p{i}"):
                clock.advance(FWD)
                dev.clock_s += NAMED
            prof.step()
    session = prof.stop()
    assert [s.device_phase_s for s in session.steps][-1] == {FOLDED_PHASE: NAMED}
    assert len(prof._phase_contexts) <= 2 + len(STANDARD_PHASES)


def test_the_note_is_in_the_summary_and_report_and_survives_a_save(tmp_path: Path) -> None:
    clock = FakeClock()
    prof = _started(clock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PhaseNamesCapped)
        _run(prof, clock, 20, ENTRIES["Profiler.phase"], lambda i: f"p{i}")
    session = prof.stop()
    loaded = load_session(save_session(session, tmp_path / "session.json"))
    assert loaded.retention == session.retention
    for s in (session, loaded):
        (note,) = [n for n in summarize(s).notes if n.startswith("phase names:")]
        # fwd and p0 .. p14 fill the cap of 16: p15 .. p19 are folded, all five shown
        assert f"cap of {CAP} distinct names, 5 later name(s) ('p15', 'p16', 'p17', 'p18', 'p19')" in note
        assert note in render_markdown(summarize(s))


def test_after_the_cap_steps_still_take_the_fast_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps whose names differ cannot be stacked into one batch; once new names fold into one, they
    look alike again, and the drain replays them as batches (not step by step)."""
    batched = [0]
    fast_batch = Recorder._fast_batch

    def counting(self: Recorder, split: Any) -> None:
        batched[0] += len(split[2])
        fast_batch(self, split)

    monkeypatch.setattr(Recorder, "_fast_batch", counting)
    clock, n = FakeClock(), 2_000
    prof = _started(clock)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PhaseNamesCapped)
        _run(prof, clock, n, ENTRIES["Profiler.phase"], lambda i: f"p{i}")
    prof.stop()
    # the first 15 steps have names of their own; a drain's runs of alike steps shorter than 4 may be replayed
    assert batched[0] >= n - (CAP - 1) - 16 * 4


def test_a_script_cannot_name_a_phase_as_the_folded_one() -> None:
    with pytest.raises(ValueError, match="past the run's cap"):
        throughput.phase(FOLDED_PHASE)


def test_without_a_profiler_the_name_check_cache_stays_bounded() -> None:
    assert profiler_module.active_profiler() is None
    bound = profiler_module.CHECKED_NAMES_MAX
    for i in range(bound + 1_000):
        with throughput.phase(f"req{i}"):
            pass
    assert len(profiler_module._CHECKED_NAMES) <= bound
    with pytest.raises(ValueError):
        throughput.phase("other")   # names past the cache are still checked


def test_the_cap_is_validated() -> None:
    with pytest.raises(ValueError, match="phase_names must be an integer >= 0"):
        RetentionPolicy(phase_names=-1)
