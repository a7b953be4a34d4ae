"""The C helper (throughput/capture/_fastphase.c) does what its Python references do: the phase context
manager (``CompiledPhase`` / ``RecordedPhase``), the drain's split of the log (``split_log``) and the
timed iterator (``Timed`` / ``Recorder.iterate_py``): the same log, the same steps and spans, the same
errors, the same paths while observed or stopped. Every scenario runs through both with a fake clock;
expected numbers are derived by hand where a test states them."""

from __future__ import annotations

import gc
import shutil
import sysconfig
import weakref
from typing import Any, Callable

import numpy as np
import pytest

from throughput.capture import recorder as recorder_module
from throughput.capture.recorder import (DRAIN_AT_LOG_ENTRIES, CompiledPhase, PhaseMisuseError, RecordedPhase,
                                         Recorder, phase_context_type)
from throughput.timing.clock import FakeClock

needs_compiled = pytest.mark.skipif(CompiledPhase is None, reason="the C helper is not built here")
PHASE_TYPES = [RecordedPhase, pytest.param(CompiledPhase, marks=needs_compiled, id="CompiledPhase")]


def test_the_install_built_the_c_helper_where_a_compiler_exists() -> None:
    """`pip install -e .` compiles it (optional=True: without a compiler the install still works)."""
    if shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) is None:
        pytest.skip("no C compiler on this machine: the Python RecordedPhase is used")
    assert CompiledPhase is not None, "a C compiler exists but throughput/capture/_fastphase.c was not built"


def test_the_environment_switch_selects_the_python_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(recorder_module.PURE_PYTHON_ENV, "1")
    assert phase_context_type() is RecordedPhase
    monkeypatch.delenv(recorder_module.PURE_PYTHON_ENV)
    assert phase_context_type() is (CompiledPhase or RecordedPhase)


class BoundaryLog:
    """A recorder observer (``Recorder.observe``) that lists the boundaries it is told of."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []

    def opened(self, phase: str, now_s: float) -> None:
        self.seen.append(("opened", phase, now_s))

    def closed(self, phase: str, now_s: float) -> None:
        self.seen.append(("closed", phase, now_s))


def _run(phase_type: type, scenario: Callable[[Recorder, FakeClock, Callable[[str], Any]], None]) -> Any:
    clock = FakeClock()
    rec = Recorder(clock, warmup_steps=0)
    contexts: dict[str, Any] = {}

    def phase(name: str) -> Any:
        if name not in contexts:
            contexts[name] = phase_type(rec, name)
        return contexts[name]

    scenario(rec, clock, phase)
    snap = rec.snapshot()
    return [(s.index, s.start_s, s.end_s, s.phase_s) for s in snap.steps], \
        [(s.phase, s.step, s.start_s, s.end_s, s.depth) for s in snap.spans]


def _training(rec: Recorder, clock: FakeClock, phase: Callable[[str], Any]) -> None:
    for _ in range(3):
        with phase("forward"):
            clock.advance(0.25)
            with phase("attention"):                  # nested: forward's own time excludes it
                clock.advance(0.5)
        with phase("backward"):
            clock.advance(1.0)
        clock.advance(0.125)                          # uncovered: "other"
        rec.end_step()


@pytest.mark.parametrize("phase_type", PHASE_TYPES)
def test_phases_and_steps_are_recorded_as_by_hand(phase_type: type) -> None:
    steps, spans = _run(phase_type, _training)
    # each step: forward 0.25 own + attention 0.5 + backward 1.0 + other 0.125 = 1.875 s
    assert steps == [(i, i * 1.875, (i + 1) * 1.875, {"forward": 0.25, "attention": 0.5, "backward": 1.0})
                     for i in range(3)]
    assert spans[:3] == [("attention", 0, 0.25, 0.75, 1), ("forward", 0, 0.0, 0.75, 0), ("backward", 0, 0.75, 1.75, 0)]


@needs_compiled
def test_both_classes_record_the_same_steps_and_spans() -> None:
    def scenario(rec: Recorder, clock: FakeClock, phase: Callable[[str], Any]) -> None:
        _training(rec, clock, phase)
        with phase("forward"):                        # the same context re-entered: nests in itself
            clock.advance(0.0625)
            with phase("forward"):
                clock.advance(0.03125)
        rec.end_step()

    assert _run(CompiledPhase, scenario) == _run(RecordedPhase, scenario)


@pytest.mark.parametrize("phase_type", PHASE_TYPES)
def test_an_exception_in_the_body_closes_the_phase_and_propagates(phase_type: type) -> None:
    def scenario(rec: Recorder, clock: FakeClock, phase: Callable[[str], Any]) -> None:
        with pytest.raises(KeyError, match="boom"):
            with phase("forward"):
                clock.advance(2.0)
                raise KeyError("boom")
        assert rec.depth == 0
        rec.end_step()

    steps, _ = _run(phase_type, scenario)
    assert steps == [(0, 0.0, 2.0, {"forward": 2.0})]


@pytest.mark.parametrize("phase_type", PHASE_TYPES)
def test_closing_out_of_order_raises_the_same_error(phase_type: type) -> None:
    rec = Recorder(FakeClock())
    outer, inner = phase_type(rec, "forward"), phase_type(rec, "attention")
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(PhaseMisuseError, match="'forward' closed while 'attention' is still open inside it"):
        outer.__exit__(None, None, None)


@pytest.mark.parametrize("phase_type", PHASE_TYPES)
def test_exit_without_enter_records_nothing(phase_type: type) -> None:
    rec = Recorder(FakeClock())
    phase_type(rec, "forward").__exit__(None, None, None)
    assert rec.snapshot().spans == () and rec.depth == 0


@pytest.mark.parametrize("phase_type", PHASE_TYPES)
def test_an_observer_sees_every_boundary(phase_type: type) -> None:
    observer = BoundaryLog()
    clock = FakeClock()
    rec = Recorder(clock)
    ctx = phase_type(rec, "forward")
    rec.observe(observer)
    with ctx:
        clock.advance(0.5)
    rec.observe(None)
    with ctx:                                         # no longer observed
        clock.advance(0.5)
    rec.end_step()
    assert observer.seen == [("opened", "forward", 0.0), ("closed", "forward", 0.5)]
    assert rec.snapshot().steps[0].phase_s == {"forward": 1.0}


@pytest.mark.parametrize("phase_type", PHASE_TYPES)
def test_after_stop_recording_nothing_is_recorded(phase_type: type) -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    ctx = phase_type(rec, "forward")
    with ctx:
        rec.stop_recording()                          # the run ends inside the phase
        clock.advance(1.0)
    with ctx:                                         # after the end: records nothing
        clock.advance(1.0)
    # the phase open at the end stays open for the profiler's stop, which closes it (at 2.0)
    assert rec.close_all() == ("forward",)
    assert [(s.phase, s.start_s, s.end_s) for s in rec.snapshot().spans] == [("forward", 0.0, 2.0)]


@pytest.mark.parametrize("phase_type", PHASE_TYPES)
def test_a_long_log_is_drained_without_a_step(phase_type: type) -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    ctx = phase_type(rec, "forward")
    for _ in range(DRAIN_AT_LOG_ENTRIES):             # 2 entries each: the log passes the cap halfway
        with ctx:
            clock.advance(0.001)
    assert len(rec._log) <= DRAIN_AT_LOG_ENTRIES + 1


@pytest.mark.parametrize("phase_type", PHASE_TYPES)
def test_decorator_form(phase_type: type) -> None:
    clock = FakeClock()
    rec = Recorder(clock)

    @phase_type(rec, "forward")
    def forward(x: int) -> int:
        clock.advance(0.5)
        return x + 1

    assert forward(1) == 2 and forward(2) == 3 and forward.__name__ == "forward"
    rec.end_step()
    assert rec.snapshot().steps[0].phase_s == {"forward": 1.0}


@needs_compiled
def test_a_compiled_phase_does_not_keep_its_recorder_alive() -> None:
    """It refers to the recorder and (through the recorder's dict of contexts, as a Profiler holds them)
    may be referred to back: the garbage collector must see the cycle."""
    rec = Recorder(FakeClock())
    ctx = CompiledPhase(rec, "forward")
    rec.__dict__["cycle"] = ctx
    ref = weakref.ref(rec)
    del rec, ctx
    gc.collect()
    assert ref() is None


@needs_compiled
def test_a_clock_that_raises_propagates_and_leaves_no_frame() -> None:
    class Broken(Exception):
        pass

    class BrokenClock(FakeClock):
        def now_s(self) -> float:
            raise Broken("clock")

    rec = Recorder(BrokenClock())
    with pytest.raises(Broken):
        with CompiledPhase(rec, "forward"):
            pass
    assert rec.depth == 0 and rec._log == []


# -- the drain's split of the log (recorder.split_log; _fastphase.split_log in C) ---------------------
END = recorder_module._STEP_END
META = (None, None, None, 1, None, None)
SPLITTERS = [recorder_module.split_log,
             pytest.param(getattr(recorder_module._fastphase, "split_log", None), marks=needs_compiled, id="C")]


def _steps_log(*steps: tuple[str, ...], t0: float = 0.0) -> list[tuple[Any, ...]]:
    """Whole steps as the hot path logs them, each boundary 0.5 s after the previous one."""
    log: list[tuple[Any, ...]] = []
    t = t0
    for k, phases in enumerate(steps):
        for name in phases:
            log += [(name, t), (None, t + 0.5)]
            t += 1.0
        log.append((END, t, META, float(k)))
        t += 0.5
    return log


@pytest.mark.parametrize("split", SPLITTERS)
def test_split_log_gives_the_columns_of_uniform_steps(split: Callable[..., Any]) -> None:
    log = _steps_log(("forward", "backward"), ("forward", "backward"))
    names, times, metas, losses, stop = split(log, END, 0)
    assert names == ("forward", "backward") and stop == 10
    # step 0: forward 0-0.5, backward 1-1.5, end 2; step 1 starts at 2.5
    assert np.frombuffer(times, dtype=np.float64).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0,
                                                               2.5, 3.0, 3.5, 4.0, 4.5]
    assert metas == [META, META] and losses == [0.0, 1.0]


NESTED = [("forward", 0.0), ("inner", 0.1), (None, 0.2), (None, 0.3), (END, 0.4, META, None)]


@pytest.mark.parametrize("split", SPLITTERS)
def test_split_log_stops_the_run_where_the_steps_change(split: Callable[..., Any]) -> None:
    a, b = _steps_log(("forward", "backward"), ("forward", "backward")), _steps_log(("data", "data"))
    log = a + b + a                                  # 2 steps, 1 of other phases, 2 steps
    assert split(log, END, 0)[1:] == split(a, END, 0)[1:]   # the first two only (stop 10)
    names, _, _, losses, stop = split(log, END, 10)
    assert (names, losses, stop) == (("data", "data"), [0.0], 15)
    assert split(log, END, 15)[4] == 25
    assert split(a + NESTED + a, END, 10) == 15      # a nested step: replayed alone (up to its end)
    assert split(a + a[:4], END, 10) == 14           # a step not ended yet: the rest of the log
    assert split(a[:3] + [(END, 9.0, META, None)], END, 0) == 4   # a phase open at the step's end


@pytest.mark.parametrize("split", SPLITTERS)
@pytest.mark.parametrize("log, stop", [
    (_steps_log(("forward",))[:-1], 2),                                      # no step end
    (NESTED, 5),                                                             # nesting
    ([("forward", 0.0), (END, 0.4, META, None)], 2),                         # an open phase at the end
    ([(None, 0.0), ("forward", 0.1), (END, 0.4, META, None)], 3),            # close before open
], ids=["no-end", "nested", "unclosed", "close-first"])
def test_split_log_sends_any_other_step_to_the_replay(split: Callable[..., Any], log: list[tuple[Any, ...]],
                                                      stop: int) -> None:
    assert split(log, END, 0) == stop


@pytest.mark.parametrize("split", SPLITTERS)
def test_split_log_of_steps_without_phases_and_of_equal_names(split: Callable[..., Any]) -> None:
    names, times, _, losses, stop = split([(END, 1.0, META, None), (END, 2, META, None)], END, 0)   # an int time
    assert names == () and np.frombuffer(times).tolist() == [1.0, 2.0] and losses == [None, None] and stop == 2
    # equal names that are different objects (a name built at run time) still match
    log = _steps_log(("forward",)) + _steps_log(("".join(["for", "ward"]),), t0=9.0)
    assert split(log, END, 0)[0::4] == (("forward",), 6)


@needs_compiled
@pytest.mark.parametrize("log", [
    _steps_log(("forward", "backward", "optimizer"), ("forward", "backward", "optimizer"), ("forward", "backward", "optimizer")),
    _steps_log(("data", "forward", "data"), ("data", "forward", "data")),   # a phase twice a step
    _steps_log(("forward",), ("forward",)) + [("backward", 1e9)],
    _steps_log(("forward",), ("forward",), ("data", "forward"), ("forward",)) + NESTED + _steps_log(("forward",)),
])
def test_both_splitters_agree(log: list[tuple[Any, ...]]) -> None:
    for start in range(len(log)):
        assert recorder_module._fastphase.split_log(log, END, start) == recorder_module.split_log(log, END, start)


def test_the_environment_switch_selects_the_python_splitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(recorder_module.PURE_PYTHON_ENV, "1")
    assert recorder_module.log_splitter() is recorder_module.split_log
    monkeypatch.delenv(recorder_module.PURE_PYTHON_ENV)
    compiled = getattr(recorder_module._fastphase, "split_log", None)
    assert recorder_module.log_splitter() is (compiled or recorder_module.split_log)


# -- the timed iterator (Recorder.iterate_py; _fastphase.Timed in C) ---------------------------------
def _py_timed(rec: Recorder, iterable: Any, phase: str, note: Callable[[Any], None]) -> Any:
    return rec.iterate_py(iterable, phase, note)


def _c_timed(rec: Recorder, iterable: Any, phase: str, note: Callable[[Any], None]) -> Any:
    return recorder_module._fastphase.Timed(rec, iterable, phase, note, DRAIN_AT_LOG_ENTRIES)


TIMED = [_py_timed, pytest.param(_c_timed, marks=needs_compiled, id="C")]


class SlowItems:
    """An iterator whose every item takes ``wait_s`` of the fake clock to arrive; raises ``error``
    instead of the item at ``fail_at``."""

    def __init__(self, clock: FakeClock, n: int, wait_s: float, fail_at: int | None = None,
                 error: BaseException | None = None) -> None:
        self.clock, self.n, self.wait_s, self.fail_at, self.error, self.i = clock, n, wait_s, fail_at, error, 0

    def __iter__(self) -> "SlowItems":
        return self

    def __next__(self) -> int:
        self.clock.advance(self.wait_s)
        if self.i == self.fail_at:
            assert self.error is not None
            raise self.error
        if self.i == self.n:
            raise StopIteration
        self.i += 1
        return self.i - 1


@pytest.mark.parametrize("timed", TIMED)
def test_each_wait_for_an_item_is_its_phase_and_every_item_is_noted(timed: Callable[..., Any]) -> None:
    clock = FakeClock()
    rec = Recorder(clock, warmup_steps=0)
    noted: list[int] = []
    got = []
    for item in timed(rec, SlowItems(clock, 3, 0.25), "data", noted.append):
        got.append(item)
        with RecordedPhase(rec, "forward"):
            clock.advance(1.0)
        rec.end_step()
    assert got == noted == [0, 1, 2]
    assert rec.depth == 0 and rec._log[-2:] == [("data", 3.75), (None, 4.0)]   # 3 x 1.25, then the end's wait
    # that 4th wait is the start of a 4th step, still open: not among the steps
    assert [s.phase_s for s in rec.snapshot().steps] == [{"data": 0.25, "forward": 1.0}] * 3


@pytest.mark.parametrize("timed", TIMED)
def test_iter_is_called_at_the_first_next_and_the_end_is_final(timed: Callable[..., Any]) -> None:
    made: list[str] = []

    class Lazy:
        def __iter__(self) -> Any:
            made.append("iter")
            return iter([7])

    rec = Recorder(FakeClock(), warmup_steps=0)
    it = timed(rec, Lazy(), "data", lambda item: None)
    assert made == []                                 # as a generator: nothing runs before next()
    assert iter(it) is it and next(it) == 7 and made == ["iter"]
    for _ in range(2):                                # ended: stays ended
        with pytest.raises(StopIteration):
            next(it)


@pytest.mark.parametrize("timed", TIMED)
def test_an_error_of_the_wrapped_iterator_propagates_closes_the_wait_and_ends(timed: Callable[..., Any]) -> None:
    class Broken(Exception):
        pass

    clock = FakeClock()
    rec = Recorder(clock, warmup_steps=0)
    it = timed(rec, SlowItems(clock, 5, 0.5, fail_at=1, error=Broken("worker died")), "data", lambda item: None)
    assert next(it) == 0
    rec.end_step()
    with pytest.raises(Broken, match="worker died"):
        next(it)
    assert rec.depth == 0 and rec._log[-2:] == [("data", 0.5), (None, 1.0)]   # the failed wait, closed
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize("timed", TIMED)
def test_an_error_of_note_propagates_and_ends_the_iterator(timed: Callable[..., Any]) -> None:
    def note(item: int) -> None:
        raise ValueError(f"bad batch {item}")

    rec = Recorder(FakeClock(), warmup_steps=0)
    it = timed(rec, iter([1, 2]), "data", note)
    with pytest.raises(ValueError, match="bad batch 1"):
        next(it)
    assert rec.depth == 0
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize("timed", TIMED)
def test_an_observed_wait_goes_through_open_and_close(timed: Callable[..., Any]) -> None:
    observer = BoundaryLog()
    clock = FakeClock()
    rec = Recorder(clock, warmup_steps=0)
    it = timed(rec, SlowItems(clock, 2, 0.5), "data", lambda item: None)
    rec.observe(observer)
    next(it)
    rec.end_step()
    rec.observe(None)
    next(it)                                          # no longer observed
    rec.end_step()
    assert observer.seen == [("opened", "data", 0.0), ("closed", "data", 0.5)]
    assert [s.phase_s for s in rec.snapshot().steps] == [{"data": 0.5}] * 2


@pytest.mark.parametrize("timed", TIMED)
def test_after_stop_recording_items_pass_through_untimed(timed: Callable[..., Any]) -> None:
    clock = FakeClock()
    rec = Recorder(clock, warmup_steps=0)
    noted: list[int] = []
    it = timed(rec, SlowItems(clock, 3, 0.5), "data", noted.append)
    assert next(it) == 0
    rec.end_step()
    rec.stop_recording()
    assert list(it) == [1, 2] and noted == [0]        # neither timed nor noted once the run ended
    assert rec.depth == 0 and rec._log == [("data", 0.0), (None, 0.5), (recorder_module._STEP_END, 0.5, rec._log[2][2], None)]


@pytest.mark.parametrize("timed", TIMED)
def test_a_long_log_of_waits_is_drained_without_a_step(timed: Callable[..., Any]) -> None:
    clock = FakeClock()
    rec = Recorder(clock, warmup_steps=0)
    for _ in timed(rec, SlowItems(clock, DRAIN_AT_LOG_ENTRIES, 0.001), "data", lambda item: None):
        pass                                          # 2 entries a wait: the log passes the cap halfway
    assert len(rec._log) <= DRAIN_AT_LOG_ENTRIES + 2


@needs_compiled
def test_a_timed_iterator_does_not_keep_its_recorder_alive() -> None:
    rec = Recorder(FakeClock())
    it = _c_timed(rec, iter([1]), "data", lambda item: None)
    rec.__dict__["cycle"] = it
    ref = weakref.ref(rec)
    del rec, it
    gc.collect()
    assert ref() is None


def test_the_environment_switch_selects_the_python_iterator(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(FakeClock())
    monkeypatch.setenv(recorder_module.PURE_PYTHON_ENV, "1")
    assert type(rec.iterate([], "data", print)).__name__ == "generator"
    monkeypatch.delenv(recorder_module.PURE_PYTHON_ENV)
    expected = "Timed" if recorder_module._fastphase is not None else "generator"
    assert type(rec.iterate([], "data", print)).__name__ == expected


@needs_compiled
def test_the_c_types_refuse_a_recorder_without_its_hot_path_lists() -> None:
    fastphase = recorder_module._fastphase

    class TupleLog:
        _log: Any = ()
        _stack: list[Any] = []
        _now = staticmethod(lambda: 0.0)
        mode = fastphase.Mode()

    class NoClock:
        _log: list[Any] = []
        _stack: list[Any] = []
        mode = fastphase.Mode()

    class PythonMode:   # the fallback's switches: the C types read a Mode's fields, not attributes
        _log: list[Any] = []
        _stack: list[Any] = []
        _now = staticmethod(lambda: 0.0)
        mode = recorder_module._Mode()

    for rec, error in ((TupleLog(), TypeError), (NoClock(), AttributeError), (PythonMode(), TypeError)):
        with pytest.raises(error):
            fastphase.Phase(rec, "forward", DRAIN_AT_LOG_ENTRIES, recorder_module._misuse)
        with pytest.raises(error):
            fastphase.Timed(rec, [], "data", print, DRAIN_AT_LOG_ENTRIES)


def test_without_the_c_helper_the_python_paths_keep_their_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the helper is not built the recorder's mode is the Python ``_Mode``; the Python phase and
    iterator follow it through an observer and the run's end as they do with the C ``Mode``."""
    monkeypatch.setattr(recorder_module, "_fastphase", None)
    observer = BoundaryLog()
    clock = FakeClock()
    rec = Recorder(clock, warmup_steps=0)
    assert type(rec.mode) is recorder_module._Mode and rec.mode.recording and rec.mode.direct
    ctx = RecordedPhase(rec, "forward")
    items = rec.iterate([1, 2, 3], "data", lambda item: None)   # iterate_py: the helper is "missing"
    rec.observe(observer)
    next(items)
    with ctx:
        clock.advance(0.5)
    rec.end_step()
    rec.observe(None)                                 # direct again
    assert rec.mode.direct
    next(items)
    with ctx:
        clock.advance(0.25)
    rec.end_step()
    rec.stop_recording()
    assert (rec.mode.recording, rec.mode.direct) == (False, False)
    assert list(items) == [3]
    assert observer.seen == [("opened", "data", 0.0), ("closed", "data", 0.0),
                             ("opened", "forward", 0.0), ("closed", "forward", 0.5)]
    assert [s.phase_s for s in rec.snapshot().steps] == [{"data": 0.0, "forward": 0.5},
                                                         {"data": 0.0, "forward": 0.25}]


_fastphase = recorder_module._fastphase
needs_own_clock = pytest.mark.skipif(_fastphase is None or not _fastphase.OWN_CLOCK,
                                     reason="no C helper, or time.perf_counter is not CLOCK_MONOTONIC here")


@needs_own_clock
def test_the_c_helper_s_own_clock_reads_what_time_perf_counter_reads() -> None:
    """Where perf_counter is CLOCK_MONOTONIC the C phases read that clock themselves (no call into
    Python): every reading lies between two perf_counter readings taken around it, 10,000 times."""
    import time
    assert time.get_clock_info("perf_counter").implementation == "clock_gettime(CLOCK_MONOTONIC)"
    for _ in range(10_000):
        before = time.perf_counter()
        own = _fastphase.perf_counter()
        after = time.perf_counter()
        assert before <= own <= after


@needs_own_clock
def test_the_default_clock_s_phases_and_waits_read_perf_counter_time() -> None:
    """A recorder on the default clock: the phase's and the timed iterator's log entries (read in C) lie
    between perf_counter readings before and after them, as the recorder's own Python reading does."""
    import time
    from throughput.timing.clock import PerfCounterClock
    rec = Recorder(PerfCounterClock())
    before = time.perf_counter()
    for _ in _fastphase.Timed(rec, [1], "data", lambda item: None, DRAIN_AT_LOG_ENTRIES):
        with CompiledPhase(rec, "forward"):
            pass
        rec.end_step()
    after = time.perf_counter()
    readings = [entry[1] for entry in rec._log]
    # the wait for item 1 (open, close), the phase (open, close), the step's end, the wait for the end (2)
    assert len(readings) == 7 and readings == sorted(readings)
    assert before <= readings[0] and readings[-1] <= after


@needs_compiled
def test_an_injected_clock_is_still_called_by_the_c_phases() -> None:
    """Any clock but the default one is called, as before: a fake clock's readings are in the log."""
    clock = FakeClock()
    rec = Recorder(clock)
    clock.advance(5.0)
    with CompiledPhase(rec, "forward"):
        clock.advance(2.0)
    assert [entry[1] for entry in rec._log] == [5.0, 7.0]


@pytest.mark.parametrize("phase_type", PHASE_TYPES)
def test_another_thread_s_use_of_a_phase_records_nothing_and_leaves_the_owner_s_frames(phase_type: type) -> None:
    """A phase object made on the recording thread (a decorator applied after start) that a loader
    thread also enters: the other thread's boundaries record nothing, and the recording thread's phase
    and step close as without it, whatever the interleaving (here: the other thread enters while the
    owner is inside the phase, and leaves after the owner left)."""
    import threading

    def scenario(rec: Recorder, clock: FakeClock, phase: Callable[[str], Any]) -> None:
        ctx = phase("prefetch")
        inside, owner_left, done = threading.Event(), threading.Event(), threading.Event()

        def other() -> None:
            with ctx:
                inside.set()
                owner_left.wait(10)
            done.set()

        with ctx:
            clock.advance(1.0)
            thread = threading.Thread(target=other)
            thread.start()
            assert inside.wait(10)
        owner_left.set()
        thread.join(10)
        assert done.is_set()
        rec.end_step()                                # no PhaseMisuseError: nothing left open

    steps, spans = _run(phase_type, scenario)
    assert steps == [(0, 0.0, 1.0, {"prefetch": 1.0})]
    assert spans == [("prefetch", 0, 0.0, 1.0, 0)]


@pytest.mark.parametrize("phase_type", PHASE_TYPES)
def test_an_exception_leaving_phases_open_inside_closes_them_and_is_not_replaced(phase_type: type) -> None:
    """Instrumentation that opened a phase inside the body (``open_phase``) and never closed it because
    the body raised: leaving the ``with`` closes it and the phase, and the script's own exception
    propagates unchanged (not a PhaseMisuseError); the next step records normally."""
    def scenario(rec: Recorder, clock: FakeClock, phase: Callable[[str], Any]) -> None:
        with pytest.raises(ValueError, match="the script's"):
            with phase("forward"):
                clock.advance(1.0)
                rec.open("inner")                     # its close never runs
                clock.advance(0.5)
                raise ValueError("the script's")
        rec.end_step()
        with phase("forward"):
            clock.advance(2.0)
        rec.end_step()

    steps, _ = _run(phase_type, scenario)
    assert steps == [(0, 0.0, 1.5, {"forward": 1.0, "inner": 0.5}), (1, 1.5, 3.5, {"forward": 2.0})]
