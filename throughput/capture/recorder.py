"""The recorder: phases and steps of the thread that created it, in memory bounded by a policy.

It works in two halves:

- The hot path (``open``, ``close``, ``end_step``, and ``RecordedPhase``) runs inside the user's
  training loop. It reads the clock, appends one tuple to a log and, on CUDA, records an event; it
  never synchronizes the device. After milliseconds of tensor work the interpreter's data is out of
  the CPU caches, so every object the hot path touches costs a cache miss: in a 1.6 ms MLP step three
  phases cost 13 us when each boundary updated per-step dictionaries, and 3.6 us when it only appended
  to a list. Python frames cost too: ``with prof.phase(...)`` went through four frames per boundary
  (``__enter__``, ``Profiler._open``, ``open``; ``__exit__``, ``_close``, ``close``) and now through
  one (``RecordedPhase``), and through none where the C helper is built (``CompiledPhase``,
  ``_fastphase.c``: the same work in C); a plain ``step()`` no longer builds a ``functools.partial``.
  On an empty step (AVX2-only AMD EPYC, 2 cores, load ~6-11, thread CPU time): 3 phases + step 13.0 ->
  8.1 us, iter + 3 phases + step 19.7 -> 11.1 us, the drain included; on a 2-core Xeon with AMX
  (2026-12-01 23:00, same minute), ``RecordedPhase`` vs the C helper: 5.2 -> 4.0 us and 6.6 -> 5.4 us.
- ``_drain`` turns the log into steps in bursts, with warm caches: every ``DRAIN_EVERY_STEPS`` steps,
  at least once a second of steps (the progress line reads the result), at every step on CUDA (device
  times are resolved as steps end), when the log grows long, and before any result is read. The common
  log, whole steps that open and close the same phases one after the other, is replayed by numpy as
  one columnar ``Batch`` (``_fast_batch``: 0.3-1 us a step, against 5-8 us for the entry-by-entry
  ``_replay``, which handles nesting and CUDA). 128 steps a drain rather than 32: numpy's per-call
  cost is then spread thinner. The log's columns come from ``split_log`` (in C where the helper is
  built: one pass instead of two ``map`` passes, a list comparison and a list-to-array conversion).
- What is kept (``StepRetention``): the warm-up, the last steps, the slowest and an even thinning, in
  full; every step in exact totals and quantile sketches. Memory does not grow with the run: 1M
  fake-clock steps hold no more than 200k do (tests/capture/test_retention.py). Phase names are capped
  (``PhaseNames``) where they enter, in ``open`` and where a phase object or timed iterator is made:
  past ``RetentionPolicy.phase_names`` a new name is logged as ``FOLDED_PHASE``, so a script that
  builds names from the step number grows nothing per step, and its steps still look alike to the
  fast drain. A known name costs ``open`` one set lookup.

Attribution is exclusive: a phase's time is its own duration less its children's, so the phases of a
step add up to at most the step's wall time and the rest is ``other``.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import os
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Protocol, TypeVar

import numpy as np

from throughput.capture.retention import Batch, PhaseNames, StepRetention
from throughput.session.records import Span, StepRecord
from throughput.session.retention import FoldedPhases, LossTotals, RetentionPolicy, SpanTotals, StepTotals
from throughput.timing.clock import Clock, time_reader
from throughput.timing.cuda import DeviceTimer

DRAIN_EVERY_STEPS = 128
DRAIN_EVERY_S = 1.0           # and, while a live reader wants fresh steps, at least once a second
FAST_BATCH_MIN_STEPS = 4   # shorter runs of uniform steps are replayed entry by entry (see _apply_host)
DRAIN_AT_LOG_ENTRIES = 4096   # bounds the log of a run that opens phases but never ends a step


class BoundaryObserver(Protocol):
    """Told of every phase boundary while installed with ``Recorder.observe`` (times: the run's clock)."""

    def opened(self, phase: str, now_s: float) -> None: ...
    def closed(self, phase: str, now_s: float) -> None: ...


class PhaseMisuseError(RuntimeError):
    """The phase API was used in a way that would give wrong numbers (the message says how)."""


# An open phase as the hot path knows it: (phase, start_s), plus the event key on CUDA. The same tuple
# is the log entry of the opening, and its identity is what ``close`` checks.
_Frame = tuple[Any, ...]
_STEP_END = object()   # marks a step's end in the log: (_STEP_END, end_s, meta, loss)


class _StepDraft:
    """A step being recorded (mutable; becomes a ``StepTuple`` when it ends and, on CUDA, resolves)."""

    __slots__ = ("index", "start_s", "phase_s", "spans", "spans_dropped", "device_phase_s", "device_busy_s",
                 "unresolved_spans", "end")

    def __init__(self, index: int, start_s: float) -> None:
        self.index = index
        self.start_s = start_s
        self.phase_s: dict[str, float] = {}
        self.spans: list[tuple[Any, ...]] = []         # (phase, start_s, end_s, depth, device_s)
        self.spans_dropped = 0
        self.device_phase_s: dict[str, float] = {}
        self.device_busy_s = 0.0
        self.unresolved_spans = 0
        self.end: tuple[Any, ...] | None = None        # (end_s, meta, loss) once the step ended


@dataclass(frozen=True, slots=True, kw_only=True)
class StepMeta:
    """What the caller knows about a finished step (all optional)."""

    samples: int | None = None
    tokens: int | None = None
    padding_tokens: int | None = None
    micro_steps: int = 1
    grad_norm: float | None = None
    peak_memory_bytes: int | None = None


T = TypeVar("T")
_NO_META = (None, None, None, 1, None, None)    # a step nothing was said about
_HEAD, _TIME, _META, _LOSS = (operator.itemgetter(i) for i in range(4))   # fields of log entries


class Recorder:
    """Records phases and steps for the thread that created it (other threads are ignored).

    Args:
        clock: the time source.
        device_timer: CUDA event pairs per phase (None on CPU).
        max_spans: spans kept in all (overrides ``retention.max_spans``).
        warmup_steps: leading steps kept in full and left out of the measured totals.
        retention: the caps of what is kept in full (``RetentionPolicy``); totals cover every step.
        read_loss: turns a kept loss (a float, or a tensor on the host) into a float at the drain.
        device_losses: reads device-tensor losses without waiting (CUDA); None reads them with
            ``read_loss`` at the end of the run.
    """

    def __init__(self, clock: Clock, device_timer: DeviceTimer | None = None, max_spans: int | None = None,
                 warmup_steps: int = 0, retention: RetentionPolicy | None = None,
                 read_loss: Callable[[Any], float | None] | None = None,
                 device_losses: "DeviceLossQueue | None" = None) -> None:
        policy = retention or RetentionPolicy()
        if max_spans is not None:
            if max_spans < 0:
                raise ValueError(f"max_spans must be >= 0, got {max_spans}")
            policy = replace(policy, max_spans=max_spans)
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self._now = time_reader(clock)
        self._timer = device_timer
        self.policy = policy
        self.owner_thread = threading.get_ident()
        # hot-path state
        self._log: list[tuple[Any, ...]] = []
        self._stack: list[_Frame] = []
        self._next_span_id = 0
        self._steps_ended = 0
        self._steps_since_drain = 0
        self._fresh_every_s = math.inf   # see keep_fresh
        self._drain_due_s = math.inf
        # drained state: open phases (their opening log entries), the step being
        # built, steps waiting for device times (CUDA), and what is kept (``StepRetention``).
        # Re-entrant: Ctrl-C can land between a `with` acquiring it and its body, leaving it held by the
        # training thread, which must still drain at stop (a plain Lock would deadlock there).
        self._drain_lock = threading.RLock()
        self._open_phases: list[_Frame] = []
        self._children: list[float] = []      # seconds of closed children, per open phase
        self._draft: _StepDraft | None = None
        self._last_end_s: float | None = None
        self._next_index = 0
        self._device_pending: dict[int, _StepDraft] = {}
        self._span_device: dict[int, tuple[int, str, int, int]] = {}  # id -> step, phase, parent, span idx
        self._child_device_s: dict[int, float] = {}
        self._read_loss = read_loss or _plain_float
        self._split_log = log_splitter()
        self._device_losses = device_losses
        self.retention = StepRetention(policy, warmup_steps)
        self.names = PhaseNames(policy)
        self._admitted = self.names.admitted   # the hot path's view of it (the same set)
        self.drained_at_s = 0.0            # clock reading of the last drain (for the progress line)
        # recording (False after stop_recording: the phases record nothing) and direct (recording and no
        # observer: the inlined hot paths may run); one object for the recorder's life, fields switched
        self.mode: Any = _fastphase.Mode() if _fastphase is not None else _Mode()
        if device_timer is not None:
            self.open = self._open_timed  # type: ignore[method-assign]  # CUDA frames carry an event key

    # -- hot path -------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._stack)

    def open(self, phase: str) -> _Frame:
        """Open ``phase`` now (host timing). The frame is also the log entry; ``close`` checks its
        identity. CUDA recorders use ``_open_timed`` instead (their frames carry an event key).
        A name past the cap opens ``FOLDED_PHASE`` (see ``PhaseNames``)."""
        if phase not in self._admitted:
            phase = self.names.admit(phase)
        frame = (phase, self._now())
        log = self._log
        log.append(frame)
        self._stack.append(frame)
        if len(log) > DRAIN_AT_LOG_ENTRIES:
            self._drain()
        return frame

    def _open_timed(self, phase: str) -> _Frame:
        if phase not in self._admitted:
            phase = self.names.admit(phase)
        span_id = self._next_span_id
        self._next_span_id = span_id + 1
        frame = (phase, self._now(), span_id)
        log = self._log
        log.append(frame)
        self._stack.append(frame)
        self._timer.start(span_id)  # type: ignore[union-attr]  # only installed with a timer
        if len(log) > DRAIN_AT_LOG_ENTRIES:
            self._drain()
        return frame

    def close(self, frame: _Frame) -> None:
        now = self._now()
        stack = self._stack
        if not stack or stack[-1] is not frame:
            raise _misuse(frame, stack)
        stack.pop()
        self._log.append((None, now))
        if self._timer is not None:
            self._timer.stop(frame[2])   # timed frames carry their event key

    def end_step(self, meta: Any = _NO_META, loss: Any = None) -> int:
        """Close the current step at now; returns its index. ``meta`` is a StepMeta, its fields as a
        tuple (see ``_meta_of``), or a callable that builds either later (when the log is drained);
        ``loss`` may be a tensor, converted lazily."""
        if self._stack:
            raise PhaseMisuseError(
                f"step() called inside phase '{self._stack[-1][0]}'; end the phase first "
                "(a step is closed between phases, after the optimizer update)"
            )
        now = self._now()
        self._log.append((_STEP_END, now, meta, loss))
        index = self._steps_ended
        self._steps_ended = index + 1
        self._steps_since_drain += 1
        # Drain every DRAIN_EVERY_STEPS steps, or every step on CUDA (device times resolve as steps end),
        # or, while a live reader asked for it (keep_fresh), once a second of slow steps.
        if self._timer is not None or self._steps_since_drain >= DRAIN_EVERY_STEPS or now >= self._drain_due_s:
            self._drain()
            self._drain_due_s = now + self._fresh_every_s
        return index

    def keep_fresh(self, every_s: float = DRAIN_EVERY_S) -> None:
        """From the next step on, drain at least every ``every_s`` seconds of steps as well, so that a
        reader of ``recent_steps`` (the live progress line) sees steps at most that old.

        Off by default: inside a training loop a drain has a large fixed cost (cold caches: 0.85 ms for
        74 steps, 1.07 ms for 128, in a 13 ms MLP step on a 2-core Xeon), so without a live reader the
        log is drained every ``DRAIN_EVERY_STEPS`` steps only (and by every reader of results, which
        drain first)."""
        if not every_s > 0:
            raise ValueError(f"every_s must be > 0, got {every_s}")
        self._fresh_every_s = every_s
        self._drain_due_s = 0.0

    def hold_in_full(self, steps: int) -> bool:
        """Steps ``0 .. steps - 1`` are kept in full and left out of the running totals (as warm-up
        steps are), so analyses can leave them out exactly: for a view window whose steps ran slower.
        Call before those steps end; returns False (nothing changed) when measured steps were counted."""
        with self._drain_lock:
            return self.retention.hold_in_full(steps)

    def stop_recording(self) -> None:
        """Phases entered through ``RecordedPhase`` record nothing from now on (the run ended)."""
        self.mode.recording = False
        self.mode.direct = False

    def phase_context(self, name: str) -> "RecordedPhase | CompiledPhase":
        """A reusable context manager (and decorator) for phase ``name`` (host-timed recorders only):
        ``CompiledPhase`` when the C helper is built, else ``RecordedPhase``; both do the same. A name
        past the cap gives a context for ``FOLDED_PHASE`` (its ``admit`` is the name it records)."""
        if self._timer is not None:
            raise PhaseMisuseError("phase_context is for host-timed recorders; use open/close on CUDA")
        return phase_context_type()(self, self.names.admit(name))

    def iterate(self, iterable: Iterable[T], phase: str, note: Callable[[T], None]) -> Iterator[T]:
        """Yield from ``iterable``, timing each wait for the next item as ``phase`` and passing each item
        to ``note`` (host-timed recorders). After ``stop_recording`` it only yields.

        ``iterate_py`` is the contract; the C helper's ``Timed`` iterator does the same without a
        generator frame (unless ``THROUGHPUT_PURE_PYTHON=1``): inside a 10 ms training step, where the
        interpreter's state is out of the CPU caches, resuming a generator and its bytecode cost several
        microseconds a batch."""
        if not compiled_helper():
            return self.iterate_py(iterable, phase, note)
        return _fastphase.Timed(self, iterable, self.names.admit(phase), note, DRAIN_AT_LOG_ENTRIES)

    def iterate_py(self, iterable: Iterable[T], phase: str, note: Callable[[T], None]) -> Iterator[T]:
        """``iterate`` as a generator (the bodies of ``open``/``close`` inlined, as in ``RecordedPhase``:
        two frames a step saved); the fallback and the reference for the C helper's ``Timed``."""
        phase = self.names.admit(phase)
        iterator = iter(iterable)
        log, stack, now = self._log, self._stack, self._now
        mode, owner = self.mode, self.owner_thread
        while mode.recording:
            if threading.get_ident() != owner:   # another thread iterates: untimed, not counted
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                yield item
                continue
            direct = mode.direct               # False while observed: through the observing open/close
            if direct:
                frame = (phase, now())
                log.append(frame)
                stack.append(frame)
            else:
                frame = self.open(phase)
            try:
                item = next(iterator)
            except StopIteration:
                self._close_wait(frame)
                return
            except BaseException:
                self._close_wait(frame)
                raise
            if direct:
                t = now()
                if stack and stack[-1] is frame:
                    stack.pop()
                    log.append((None, t))
                if len(log) > DRAIN_AT_LOG_ENTRIES:
                    self._drain()
            else:
                self._close_wait(frame)
            note(item)
            yield item
        yield from iterator

    def _close_wait(self, frame: _Frame) -> None:
        if self._stack and self._stack[-1] is frame:
            self.close(frame)

    def observe(self, observer: "BoundaryObserver | None") -> None:
        """Call ``observer.opened(phase, now_s)`` after every ``open`` and ``observer.closed(phase,
        now_s)`` after every ``close`` (with the times the recorder logged), until ``observe(None)``.

        For views that look at a few steps closely (memory per phase, the operator window). While no
        observer is set the hot path is untouched: the observing versions of ``open``/``close`` are
        instance attributes that shadow the class's methods only while installed, and ``direct`` is
        False meanwhile, so the inlined paths (``RecordedPhase``, ``iterate``) go through them too.
        """
        timed_open = self._open_timed if self._timer is not None else None
        if observer is None:
            self.__dict__.pop("close", None)
            if timed_open is not None:
                self.open = timed_open  # type: ignore[method-assign]  # CUDA frames carry an event key
            else:
                self.__dict__.pop("open", None)
            self.mode.direct = self.mode.recording
            return
        log = self._log
        plain_open: Callable[[str], _Frame] = timed_open or (lambda phase: Recorder.open(self, phase))
        plain_close = Recorder.close

        def open(phase: str) -> _Frame:
            frame = plain_open(phase)
            observer.opened(frame[0], frame[1])   # the name recorded (FOLDED_PHASE past the cap)
            return frame

        def close(frame: _Frame) -> None:
            plain_close(self, frame)
            observer.closed(frame[0], log[-1][1] if log else self._now())

        self.__dict__["open"], self.__dict__["close"] = open, close
        self.mode.direct = False


    def close_through(self, frame: _Frame) -> tuple[str, ...]:
        """Close every phase opened after ``frame``, then ``frame`` itself (innermost first).

        For instrumentation that learns late that a phase was abandoned (an exception escaped the code
        it wrapped and its end hook never ran). A frame that is not open closes nothing.
        """
        if not any(f is frame for f in self._stack):
            return ()
        closed: list[str] = []
        while self._stack:
            top = self._stack[-1]
            closed.append(top[0])
            self.close(top)
            if top is frame:
                break
        return tuple(closed)

    def close_all(self) -> tuple[str, ...]:
        """Close every open phase (innermost first), e.g. when the run dies inside one."""
        closed = tuple(f[0] for f in reversed(self._stack))
        while self._stack:
            self.close(self._stack[-1])
        return closed

    # -- results (each drains the log first) ----------------------------------------------------
    @property
    def steps_done(self) -> int:
        return self._steps_ended

    def step_times(self, index: int) -> tuple[float, dict[str, float]]:
        """(wall seconds, exclusive host seconds per phase) of finished step ``index``; KeyError when
        that step is no longer kept (it is one of the last ``recent_steps`` while they are asked for)."""
        self._drain()
        pending = self._device_pending.get(index)
        if pending is not None and pending.end is not None:
            return pending.end[0] - pending.start_s, dict(pending.phase_s)
        step = self.retention.find(index)
        if step is None:
            raise KeyError(f"step {index} is not kept (finished: {self._steps_ended})")
        return step[2] - step[1], dict(zip(step[3], step[4]))

    @property
    def spans_kept(self) -> int:
        self._drain()
        kept = sum(len(s[7]) for s in self.retention.kept())
        return min(self.policy.max_spans, kept + (len(self._draft.spans) if self._draft is not None else 0))

    @property
    def spans_dropped(self) -> int:
        self._drain()
        return self._spans_seen() - self.spans_kept

    def _spans_seen(self) -> int:
        draft = self._draft
        return self.retention.spans_seen + (len(draft.spans) + draft.spans_dropped if draft is not None else 0)

    def finish_device(self) -> None:
        """Resolve all device timings: the one synchronize of the run (CUDA only)."""
        self._drain()
        if self._timer is not None:
            with self._drain_lock:
                self._timer.finish()
                self._absorb_device_times()
                self._commit_resolved(final=True)
        if self._device_losses is not None:
            with self._drain_lock:
                self._device_losses.finish()
                self._take_device_losses()

    def snapshot(self) -> "Snapshot":
        """What is kept so far, as records: kept steps, their spans, and the totals of every step."""
        self._drain()
        with self._drain_lock:
            self.retention.totals.flush()
            kept = self.retention.kept()
            pending = [self._pending_tuple(d) for _, d in sorted(self._device_pending.items()) if d.end is not None]
            steps, spans = _records(kept + pending, self.policy.max_spans)
            draft = self._draft
            if draft is not None:   # the step in progress (a run that ends inside a step, or never steps)
                room = max(0, self.policy.max_spans - len(spans))
                spans += tuple(Span(phase=p, step=draft.index, start_s=a, end_s=b, depth=d, device_s=dev)
                               for p, a, b, d, dev in draft.spans[:room])
            r = self.retention
            return Snapshot(steps=steps, spans=spans, steps_seen=r.seen + len(pending), stride=r.stride,
                            measured=r.step_totals(), loss=r.loss_totals(), spans_seen=self._spans_seen(),
                            span_totals=r.span_records(), folded_phases=self.names.folded())

    def recent_steps(self) -> list[tuple[Any, ...]]:
        """A copy of the ring of recent kept steps (for the progress line; does not drain)."""
        with self._drain_lock:
            return self.retention.recent_steps() or list(self.retention.warm)

    def records(self, losses: dict[int, float | None] | None = None) -> tuple[list[StepRecord], list[Span]]:
        """Frozen kept step records and their spans so far (``losses`` is ignored: kept for callers
        of the former API; losses are read at the drain)."""
        snap = self.snapshot()
        return list(snap.steps), list(snap.spans)

    # -- the drain: log -> steps and spans ------------------------------------------------------
    def _drain(self) -> None:
        with self._drain_lock:
            log = self._log
            count = len(log)
            # Slice, then delete the same count: both are single C calls, so an entry the owner thread
            # appends meanwhile (if another thread asked for results) stays for the next drain.
            entries = log[:count]
            del log[:count]
            self._steps_since_drain = 0
            if self._timer is not None:
                self._replay(entries)
            else:
                self._apply_host(entries)
            if self._timer is not None:
                self._timer.poll()
                self._absorb_device_times()
                self._commit_resolved()
            if self._device_losses is not None:
                self._take_device_losses()
            if entries:
                self.drained_at_s = entries[-1][1]

    def _replay(self, entries: list[tuple[Any, ...]]) -> None:
        """Apply log entries in order: the attribution rules, on plain locals (this loop is the cost).

        A phase's exclusive time is its own duration less its children's (``children`` runs parallel
        to the stack of open phases, which are the log's own opening entries)."""
        open_phases, children = self._open_phases, self._children
        timer_on = self._timer is not None
        span_cap = self.policy.spans_per_step
        span_totals = self.retention.span_totals
        draft = self._draft
        for entry in entries:
            head, now_s = entry[0], entry[1]
            if draft is None:   # the step starts where the previous one ended (or at its first entry)
                draft = _StepDraft(self._next_index, self._last_end_s if self._last_end_s is not None else now_s)
            if head is None:   # a phase closed
                frame = open_phases.pop()
                phase, start_s = frame[0], frame[1]
                seconds = now_s - start_s
                phase_s = draft.phase_s
                phase_s[phase] = phase_s.get(phase, 0.0) + (seconds - children.pop())
                depth = len(open_phases)
                spans = draft.spans
                span_index = len(spans)
                if span_index < span_cap:
                    spans.append((phase, start_s, now_s, depth, None))
                else:
                    span_index = -1
                    draft.spans_dropped += 1
                key = (phase, depth) if depth else phase
                totals = span_totals.get(key)
                if totals is None:
                    span_totals[key] = [1, seconds, seconds]
                else:
                    totals[0] += 1
                    totals[1] += seconds
                    if seconds > totals[2]:
                        totals[2] = seconds
                if depth:   # the parent's exclusive time excludes this child
                    children[-1] += seconds
                if timer_on:
                    self._span_device[frame[2]] = (draft.index, phase, open_phases[-1][2] if depth else -1,
                                                   span_index)
                    draft.unresolved_spans += 1
            elif head is _STEP_END:
                draft.end = (now_s, entry[2], entry[3])
                self._last_end_s = now_s
                self._next_index += 1
                if timer_on:
                    self._device_pending[draft.index] = draft
                else:
                    self._commit(draft)
                draft = None
            else:   # a phase opened
                open_phases.append(entry)
                children.append(0.0)
        self._draft = draft

    def _apply_host(self, entries: list[tuple[Any, ...]]) -> None:
        """Host-timed entries, in order: runs of whole steps with the same flat phases through
        ``_fast_batch`` (numpy, a fraction of ``_replay``'s cost), every other step entry by entry
        (``_replay``). One odd step (an epoch's last fetch, an evaluation, a nested phase) costs its own
        replay, not the drain's. A step begun in an earlier drain is finished entry by entry first."""
        pos, n = 0, len(entries)
        split = self._split_log
        while pos < n:
            if self._draft is not None or self._open_phases:
                stop = pos
                while stop < n and entries[stop][0] is not _STEP_END:
                    stop += 1
                stop = min(stop + 1, n)
            else:
                part = split(entries, _STEP_END, pos)
                if part.__class__ is not int and len(part[0]) <= self.policy.spans_per_step \
                        and len(part[2]) >= FAST_BATCH_MIN_STEPS:
                    self._fast_batch(part)
                    pos = part[4]
                    continue
                stop = part if part.__class__ is int else part[4]
            self._replay(entries[pos:stop] if pos or stop < n else entries)
            pos = stop

    def _fast_batch(self, split: tuple[tuple[str, ...], bytearray, list[Any], list[Any], int]) -> None:
        """Whole steps that all open and close the same phases one after the other (no nesting), as
        ``split_log`` gives them, attributed with numpy as one ``Batch``; per-step tuples are built only
        for the steps that are kept. The numbers are the same to the bit as ``_replay``'s: a phase's
        time is its close minus its open, summed per name in the order ``_replay`` adds."""
        span_names, raw_times, metas, losses, _ = split
        phases = len(span_names)
        size = 2 * phases + 1
        steps = len(metas)
        times = np.frombuffer(raw_times, dtype=np.float64).reshape(steps, size)
        span_times = times[:, :size - 1]
        seconds = span_times[:, 1::2] - span_times[:, 0::2]
        end = times[:, size - 1].copy()
        start = np.empty(steps)
        start[1:] = end[:-1]
        start[0] = self._last_end_s if self._last_end_s is not None else times[0, 0]
        names = tuple(dict.fromkeys(span_names))
        if len(names) == phases:
            values = seconds
        else:   # a phase opened twice in a step: summed in order, as _replay does (0.0 + a + b)
            values = np.zeros((steps, len(names)))
            for j, name in enumerate(span_names):
                slot = names.index(name)
                values[:, slot] = values[:, slot] + seconds[:, j]
        first = self._next_index
        retention = self.retention
        retention.count_span_columns(span_names, seconds)
        self._last_end_s = float(end[-1])
        self._next_index = first + steps
        if metas.count(_NO_META) != steps:
            metas = [_meta_of(m) for m in metas]
        if losses.count(None) != steps:
            losses = [self._loss_of(first + k, v) for k, v in enumerate(losses)]
        retention.add_batch(Batch(first, start, end, names, values, metas, losses, span_names, span_times))

    def _loss_of(self, index: int, loss: Any) -> float | None:
        if loss is None or loss.__class__ is float:
            return loss
        if self._device_losses is not None and self._device_losses.accepts(loss):
            self._device_losses.submit(index, loss)
            return None
        return self._read_loss(loss)

    def _commit(self, draft: _StepDraft) -> None:
        """A finished (and, on CUDA, resolved) step goes to retention and the totals."""
        end_s, meta, loss = draft.end  # type: ignore[misc]  # committed drafts have ended
        phase_s = draft.phase_s
        timed = self._timer is not None
        retention = self.retention
        retention.spans_seen += len(draft.spans) + draft.spans_dropped
        retention.add((draft.index, draft.start_s, end_s, tuple(phase_s), tuple(phase_s.values()),
                       _meta_of(meta), self._loss_of(draft.index, loss), tuple(draft.spans),
                       tuple(draft.device_phase_s.items()) if timed else None,
                       draft.device_busy_s if timed else None))

    def _pending_tuple(self, draft: _StepDraft) -> tuple[Any, ...]:
        """A step still waiting for device times, as a kept step without them (mid-run snapshots)."""
        end_s, meta, _ = draft.end  # type: ignore[misc]  # committed drafts have ended
        return (draft.index, draft.start_s, end_s, tuple(draft.phase_s), tuple(draft.phase_s.values()),
                _meta_of(meta), None, tuple(draft.spans), None, None)

    def _commit_resolved(self, final: bool = False) -> None:
        """Commit, in index order, the ended steps whose device times have all resolved."""
        pending = self._device_pending
        while pending:
            index = min(pending)
            draft = pending[index]
            if draft.end is None or (draft.unresolved_spans and not final):
                break
            del pending[index]
            self._commit(draft)

    def _take_device_losses(self) -> None:
        assert self._device_losses is not None
        for index, value in self._device_losses.ready():
            self.retention.set_loss(index, value)

    def _absorb_device_times(self) -> None:
        assert self._timer is not None
        for span_id in list(self._span_device):
            device_s = self._timer.take(span_id)
            if device_s is None:
                continue
            step, phase, parent_id, span_index = self._span_device.pop(span_id)
            draft = self._device_pending.get(step, self._draft)
            if draft is None or draft.index != step:
                continue
            exclusive = max(0.0, device_s - self._child_device_s.pop(span_id, 0.0))
            draft.device_phase_s[phase] = draft.device_phase_s.get(phase, 0.0) + exclusive
            if parent_id >= 0:
                self._child_device_s[parent_id] = self._child_device_s.get(parent_id, 0.0) + device_s
            else:
                draft.device_busy_s += device_s
            draft.unresolved_spans -= 1
            if span_index >= 0:
                draft.spans[span_index] = draft.spans[span_index][:4] + (device_s,)


class RecordedPhase:
    """``with`` one phase on a host-timed recorder in one Python frame per enter and per exit: what
    ``Profiler.phase(name)`` hands out on the recording thread. The bodies of ``open`` and ``close``
    are inlined here because a call is the cost being saved (each frame is ~0.3-0.5 us inside a
    training step); CUDA recorders go through ``open``/``close``, and so does an observed recorder
    (``Recorder.observe``). After ``Recorder.stop_recording`` it records nothing."""

    __slots__ = ("_rec", "_name", "_frames", "_log", "_stack", "_now", "_mode", "_owner")

    def __init__(self, rec: "Recorder", name: str) -> None:
        self._rec, self._name = rec, name
        self._frames: list[_Frame | None] = []
        self._log, self._stack, self._now, self._mode = rec._log, rec._stack, rec._now, rec.mode
        self._owner = rec.owner_thread

    def __enter__(self) -> "RecordedPhase":
        if threading.get_ident() != self._owner:   # another thread's phase: not recorded, and the
            return self                            # recording thread's frames are left as they are
        mode = self._mode
        if not mode.direct:   # stopped (records nothing), or observed (the observing open sees it)
            self._frames.append(self._rec.open(self._name) if mode.recording else None)
            return self
        frame = (self._name, self._now())
        log = self._log
        log.append(frame)
        self._stack.append(frame)
        self._frames.append(frame)
        if len(log) > DRAIN_AT_LOG_ENTRIES:
            self._rec._drain()
        return self

    def __exit__(self, *exc: object) -> None:
        if threading.get_ident() != self._owner:
            return
        now = self._now()
        frame = self._frames.pop() if self._frames else None
        stack = self._stack
        mode = self._mode
        if not mode.direct:
            if frame is not None and mode.recording:
                if exc and exc[0] is not None:   # phases left open inside the body close with it
                    self._rec.close_through(frame)
                else:
                    self._rec.close(frame)
        elif stack and stack[-1] is frame:
            stack.pop()
            self._log.append((None, now))
        elif frame is not None and exc and exc[0] is not None:
            # An exception is leaving the body with phases opened inside it still open (their closing
            # code never ran): they and this phase are closed, and the exception goes on unchanged.
            self._rec.close_through(frame)
        elif frame is not None:
            raise _misuse(frame, stack)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """As a decorator: the calls of ``fn`` are this phase (while this recorder records)."""
        ctx = self

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with ctx:
                return fn(*args, **kwargs)

        return wrapper


try:
    from throughput.capture import _fastphase
except ImportError:   # not built (no C compiler when it was installed): RecordedPhase does the same
    _fastphase = None  # type: ignore[assignment]

if _fastphase is not None:
    class CompiledPhase(_fastphase.Phase):
        """``RecordedPhase`` with ``__enter__`` and ``__exit__`` in C (``_fastphase.c``): no Python frame
        per boundary (3 phases + ``step()`` on an empty step: 5.2 -> 4.0 us; see the C file)."""

        __slots__ = ()

        def __new__(cls, rec: "Recorder", name: str) -> "CompiledPhase":
            return super().__new__(cls, rec, name, DRAIN_AT_LOG_ENTRIES, _misuse)

        __call__ = RecordedPhase.__call__
else:
    CompiledPhase = None  # type: ignore[misc]


class _Mode:
    """``Recorder.mode`` when the C helper is not built (its ``Mode`` otherwise: the C boundaries read
    its fields directly)."""

    __slots__ = ("recording", "direct")

    def __init__(self) -> None:
        self.recording = True
        self.direct = True


#: Set to 1 to use the Python ``RecordedPhase`` even when the C helper is built (to compare, or debug).
PURE_PYTHON_ENV = "THROUGHPUT_PURE_PYTHON"


def helpers_allowed() -> bool:
    """False when ``THROUGHPUT_PURE_PYTHON`` is 1: every C helper (``_fastphase``, ``_bypass``,
    ``_sigterm``) is left unused and its Python fallback runs (read when used, so tests can switch it)."""
    return os.environ.get(PURE_PYTHON_ENV) != "1"


def bypass_type(name: str) -> Any:
    """``_bypass.<name>`` (``Bypass``, ``Around``: C callables that add no Python frame) where that helper
    is built and allowed (``helpers_allowed``), else None: the hooks then use their Python wrappers."""
    try:
        from throughput.capture import _bypass
    except ImportError:
        return None
    return getattr(_bypass, name) if helpers_allowed() else None


def compiled_helper() -> bool:
    """Whether the C helper's versions run: it is built and ``THROUGHPUT_PURE_PYTHON`` is not 1 (read
    when a recorder, phase context or timed iterator is made, so tests can switch it)."""
    return _fastphase is not None and helpers_allowed()


def phase_context_type() -> "type[RecordedPhase] | type[CompiledPhase]":
    """The class ``Recorder.phase_context`` builds (see ``compiled_helper``)."""
    return CompiledPhase if compiled_helper() else RecordedPhase


def log_splitter() -> Callable[[list[tuple[Any, ...]], Any, int], Any]:
    """The ``split_log`` a recorder's drain uses (see ``compiled_helper``)."""
    return _fastphase.split_log if compiled_helper() else split_log


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """What a recorder holds at one moment (see ``Recorder.snapshot``)."""

    steps: tuple[StepRecord, ...]
    spans: tuple[Span, ...]
    steps_seen: int
    stride: int
    measured: StepTotals | None
    loss: LossTotals
    spans_seen: int
    span_totals: tuple[SpanTotals, ...]
    folded_phases: FoldedPhases | None = None


class DeviceLossQueue(Protocol):
    """Reads device-tensor losses without waiting for the device (capture.steps has the CUDA one)."""

    def accepts(self, loss: Any) -> bool: ...
    def submit(self, index: int, loss: Any) -> None: ...
    def ready(self) -> list[tuple[int, float | None]]: ...
    def finish(self) -> None: ...


def _records(kept: list[tuple[Any, ...]], max_spans: int) -> tuple[tuple[StepRecord, ...], tuple[Span, ...]]:
    steps = []
    spans: list[Span] = []
    for index, start_s, end_s, names, values, meta, loss, step_spans, device, busy in kept:
        samples, tokens, padding_tokens, micro_steps, grad_norm, peak_memory_bytes = meta
        steps.append(StepRecord(
            index=index, start_s=start_s, end_s=end_s, phase_s=dict(zip(names, values)), micro_steps=micro_steps,
            samples=samples, tokens=tokens, padding_tokens=padding_tokens, loss=loss, grad_norm=grad_norm,
            device_phase_s=dict(device) if device is not None else None, device_busy_s=busy,
            peak_memory_bytes=peak_memory_bytes,
        ))
        room = max_spans - len(spans)
        spans += [Span(phase=p, step=index, start_s=a, end_s=b, depth=d, device_s=dev)
                  for p, a, b, d, dev in step_spans[:max(0, room)]]
    return tuple(steps), tuple(spans)


def _plain_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def split_log(entries: list[tuple[Any, ...]], step_end: Any, start: int) -> \
        tuple[tuple[str, ...], bytearray, list[Any], list[Any], int] | int:
    """How the drain takes ``entries`` from ``start``. The longest run of whole steps there that each
    open and close the same phases one after the other (open a, close, open b, close, ..., step end),
    as the columns ``_fast_batch`` needs: the phases of a step, every entry's time as float64 bytes in
    log order, the step ends' meta and loss fields, and the index after the run. When the step at
    ``start`` is not of that kind (nested phases, a phase open at its end), the index after its end, or
    the log's length for a step not ended yet: those entries are replayed one by one.
    ``_fastphase.split_log`` does the same in one C pass where the helper is built
    (tests/capture/test_compiled_phase.py compares them); entries are as the hot path writes them."""
    n = len(entries)
    pattern: list[Any] = []
    for entry in itertools.islice(entries, start, None):   # the first step: the pattern
        pattern.append(entry[0])
        if entry[0] is step_end:
            break
    else:
        return n
    size = len(pattern)
    if size % 2 == 0 or pattern[1:size - 1:2] != [None] * (size // 2) or None in pattern[0:size - 1:2]:
        return start + size
    # The run, compared a chunk of steps at a time: a drain with several odd steps reads each head
    # about once, not once per odd step.
    stop = start + size
    while stop + size <= n:
        steps = min(64, (n - stop) // size)
        heads = list(map(_HEAD, entries[stop:stop + steps * size]))
        if heads == pattern * steps:
            stop += steps * size
            continue
        k = 0
        while heads[k * size:(k + 1) * size] == pattern:
            k += 1
        stop += k * size
        break
    ends = entries[start + size - 1:stop:size]
    times = bytearray(np.array(list(map(_TIME, entries[start:stop])), dtype=np.float64).tobytes())
    return tuple(pattern[0:size - 1:2]), times, list(map(_META, ends)), list(map(_LOSS, ends)), stop


def _meta_of(meta: Any) -> tuple[Any, ...]:
    """A step's meta fields (samples, tokens, padding_tokens, micro_steps, grad_norm, peak_memory_bytes)
    from what ``end_step`` got: that tuple itself, a StepMeta, or a callable that builds either."""
    if meta.__class__ is tuple:
        return meta
    if not isinstance(meta, StepMeta):
        meta = meta()
        if meta.__class__ is tuple:
            return meta
    return (meta.samples, meta.tokens, meta.padding_tokens, meta.micro_steps, meta.grad_norm,
            meta.peak_memory_bytes)


def _misuse(frame: _Frame, stack: list[_Frame]) -> PhaseMisuseError:
    if not any(f is frame for f in stack):
        return PhaseMisuseError(f"phase '{frame[0]}' closed twice or never opened")
    return PhaseMisuseError(
        f"phase '{frame[0]}' closed while '{stack[-1][0]}' is still open inside it; "
        "phases must close in the reverse order they opened (use `with prof.phase(...)`)")
