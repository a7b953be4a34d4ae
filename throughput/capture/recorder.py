"""The recorder: phases and steps of the thread that created it.

It works in two halves:

- The hot path (``open``, ``close``, ``end_step``) runs inside the user's training loop. It reads the
  clock, appends one tuple to a log and, on CUDA, records an event; it never synchronizes the device.
  After milliseconds of tensor work the interpreter's data is out of the CPU caches, so every object the
  hot path touches costs a cache miss: in a 1.6 ms MLP step three phases cost 13 us when each boundary
  updated per-step dictionaries, and 3.6 us when it only appended to a list.
- ``_drain`` turns the log into steps and spans in bursts, with warm caches: every
  ``DRAIN_EVERY_STEPS`` steps, at every step on CUDA (device times are resolved as steps end), when
  the log grows long, and before any result is read.

Attribution is exclusive: while a child phase is open, its parent's clock is paused, so the phases of
a step add up to at most the step's wall time and the rest is ``other``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from throughput.session.records import Span, StepRecord
from throughput.timing.clock import Clock, time_reader
from throughput.timing.cuda import DeviceTimer

DRAIN_EVERY_STEPS = 32
DRAIN_AT_LOG_ENTRIES = 4096   # bounds the log of a run that opens phases but never ends a step


class BoundaryObserver(Protocol):
    """Told of every phase boundary while installed with ``Recorder.observe`` (times: the run's clock)."""

    def opened(self, phase: str, now_s: float) -> None: ...
    def closed(self, phase: str, now_s: float) -> None: ...


class PhaseMisuseError(RuntimeError):
    """The phase API was used in a way that would give wrong numbers (the message says how)."""


# An open phase as the hot path knows it: (phase, start_s, span_id). The same tuple is the log entry of
# the opening, and its identity is what ``close`` checks.
_Frame = tuple[str, float, int]
_STEP_END = object()   # marks a step's end in the log: (_STEP_END, end_s, meta, loss)


class _StepDraft:
    """A step being recorded (mutable; becomes a frozen StepRecord in ``records()``)."""

    __slots__ = ("index", "start_s", "phase_s", "device_phase_s", "device_busy_s", "unresolved_spans")

    def __init__(self, index: int, start_s: float) -> None:
        self.index = index
        self.start_s = start_s
        self.phase_s: dict[str, float] = {}
        self.device_phase_s: dict[str, float] = {}
        self.device_busy_s = 0.0
        self.unresolved_spans = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StepMeta:
    """What the caller knows about a finished step (all optional)."""

    samples: int | None = None
    tokens: int | None = None
    padding_tokens: int | None = None
    micro_steps: int = 1
    grad_norm: float | None = None
    peak_memory_bytes: int | None = None


class Recorder:
    """Records phases and steps for the thread that created it (other threads are ignored)."""

    def __init__(self, clock: Clock, device_timer: DeviceTimer | None = None,
                 max_spans: int = 200_000) -> None:
        if max_spans < 0:
            raise ValueError(f"max_spans must be >= 0, got {max_spans}")
        self._now = time_reader(clock)
        self._timer = device_timer
        self._max_spans = max_spans
        self.owner_thread = threading.get_ident()
        # hot-path state
        self._log: list[tuple[Any, ...]] = []
        self._stack: list[_Frame] = []
        self._next_span_id = 0
        self._steps_ended = 0
        self._steps_since_drain = 0
        # drained state: open phases as [phase, start_s, resume_s, exclusive_s, span_id], the step being
        # built, finished steps, and spans as plain tuples (phase, step, start_s, end_s, depth, device_s)
        self._drain_lock = threading.Lock()
        self._open_phases: list[list[Any]] = []
        self._draft: _StepDraft | None = None
        self._last_end_s: float | None = None
        # finished steps as (start_s, end_s, ((phase, seconds), ...), meta fields, loss): tuples of plain
        # values, which the garbage collector stops tracking, so a long run does not make every full
        # collection (hundreds of ms with torch loaded) come sooner. CUDA steps keep their draft too.
        self._finished: dict[int, tuple[Any, ...]] = {}
        self._device_drafts: dict[int, _StepDraft] = {}
        self._spans: list[tuple[str, int, float, float, int, float | None]] = []
        self._span_device: dict[int, tuple[int, str, int, int]] = {}  # id -> step, phase, parent, span idx
        self._child_device_s: dict[int, float] = {}
        self._spans_dropped = 0

    # -- hot path -------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._stack)

    def open(self, phase: str) -> _Frame:
        span_id = self._next_span_id
        self._next_span_id = span_id + 1
        frame = (phase, self._now(), span_id)
        log = self._log
        log.append(frame)
        self._stack.append(frame)
        if self._timer is not None:
            self._timer.start(span_id)
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
            self._timer.stop(frame[2])

    def end_step(self, meta: StepMeta | Callable[[], StepMeta] = StepMeta(), loss: Any = None) -> int:
        """Close the current step at now; returns its index. ``meta`` may be a callable that builds it
        later (when the log is drained); ``loss`` may be a tensor, converted lazily."""
        if self._stack:
            raise PhaseMisuseError(
                f"step() called inside phase '{self._stack[-1][0]}'; end the phase first "
                "(a step is closed between phases, after the optimizer update)"
            )
        self._log.append((_STEP_END, self._now(), meta, loss))
        index = self._steps_ended
        self._steps_ended = index + 1
        self._steps_since_drain += 1
        if self._timer is not None or self._steps_since_drain >= DRAIN_EVERY_STEPS:
            self._drain()
        return index

    def observe(self, observer: "BoundaryObserver | None") -> None:
        """Call ``observer.opened(phase, now_s)`` after every ``open`` and ``observer.closed(phase,
        now_s)`` after every ``close`` (with the times the recorder logged), until ``observe(None)``.

        For views that look at a few steps closely (memory per phase, the operator window). While no
        observer is set the hot path is untouched: the observing versions of ``open``/``close`` are
        instance attributes that shadow the class's methods only while installed.
        """
        if observer is None:
            self.__dict__.pop("open", None)
            self.__dict__.pop("close", None)
            return
        plain_open, plain_close, log = Recorder.open, Recorder.close, self._log

        def open(phase: str) -> _Frame:
            frame = plain_open(self, phase)
            observer.opened(phase, frame[1])
            return frame

        def close(frame: _Frame) -> None:
            plain_close(self, frame)
            observer.closed(frame[0], log[-1][1] if log else self._now())

        self.__dict__["open"], self.__dict__["close"] = open, close

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
        """(wall seconds, exclusive host seconds per phase) of finished step ``index``."""
        self._drain()
        start_s, end_s, phase_items = self._finished[index][:3]
        return end_s - start_s, dict(phase_items)

    @property
    def spans_kept(self) -> int:
        self._drain()
        return len(self._spans)

    @property
    def spans_dropped(self) -> int:
        self._drain()
        return self._spans_dropped

    def finish_device(self) -> None:
        """Resolve all device timings: the one synchronize of the run (CUDA only)."""
        self._drain()
        if self._timer is not None:
            self._timer.finish()
            self._absorb_device_times()

    def records(self, losses: dict[int, float | None] | None = None) -> tuple[list[StepRecord], list[Span]]:
        """Frozen step records and spans so far. ``losses`` maps step index to a converted loss."""
        self._drain()
        losses = losses or {}
        out: list[StepRecord] = []
        for index in sorted(self._finished):
            start_s, end_s, phase_items, meta, _ = self._finished[index]
            samples, tokens, padding_tokens, micro_steps, grad_norm, peak_memory_bytes = meta
            draft = self._device_drafts.get(index)
            resolved = draft is not None and not draft.unresolved_spans
            out.append(StepRecord(
                index=index, start_s=start_s, end_s=end_s, phase_s=dict(phase_items),
                micro_steps=micro_steps, samples=samples, tokens=tokens, padding_tokens=padding_tokens,
                loss=losses.get(index), grad_norm=grad_norm,
                device_phase_s=dict(draft.device_phase_s) if resolved else None,   # type: ignore[union-attr]
                device_busy_s=draft.device_busy_s if resolved else None,   # type: ignore[union-attr]
                peak_memory_bytes=peak_memory_bytes,
            ))
        spans = [Span(phase=p, step=i, start_s=a, end_s=b, depth=d, device_s=dev)
                 for p, i, a, b, d, dev in self._spans]
        return out, spans

    def pending_losses(self) -> dict[int, Any]:
        self._drain()
        return {i: v[4] for i, v in self._finished.items() if v[4] is not None}

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
            self._replay(entries)
            if self._timer is not None:
                self._timer.poll()
                self._absorb_device_times()

    def _replay(self, entries: list[tuple[Any, ...]]) -> None:
        """Apply log entries in order: the attribution rules, on plain locals (this loop is the cost)."""
        open_phases, spans, max_spans = self._open_phases, self._spans, self._max_spans
        timer_on = self._timer is not None
        draft = self._draft
        for entry in entries:
            head, now_s = entry[0], entry[1]
            if draft is None:   # the step starts where the previous one ended (or at its first entry)
                draft = _StepDraft(len(self._finished), self._last_end_s if self._last_end_s is not None else now_s)
            if head is None:   # a phase closed
                phase, start_s, resume_s, exclusive_s, span_id = open_phases.pop()
                phase_s = draft.phase_s
                phase_s[phase] = phase_s.get(phase, 0.0) + exclusive_s + (now_s - resume_s)
                parent_id = -1
                if open_phases:   # the parent's clock runs again
                    parent = open_phases[-1]
                    parent[2] = now_s
                    parent_id = parent[4]
                span_index = -1
                if len(spans) < max_spans:
                    span_index = len(spans)
                    spans.append((phase, draft.index, start_s, now_s, len(open_phases), None))
                else:
                    self._spans_dropped += 1
                if timer_on:
                    self._span_device[span_id] = (draft.index, phase, parent_id, span_index)
                    draft.unresolved_spans += 1
            elif head is _STEP_END:
                meta = entry[2] if isinstance(entry[2], StepMeta) else entry[2]()
                self._finished[draft.index] = (draft.start_s, now_s, tuple(draft.phase_s.items()),
                                               _meta_fields(meta), entry[3])
                if timer_on:
                    self._device_drafts[draft.index] = draft
                self._last_end_s = now_s
                draft = None
            else:   # a phase opened: pause its parent's clock
                if open_phases:
                    parent = open_phases[-1]
                    parent[3] += now_s - parent[2]
                open_phases.append([head, now_s, now_s, 0.0, entry[2]])
        self._draft = draft

    def _absorb_device_times(self) -> None:
        assert self._timer is not None
        for span_id in list(self._span_device):
            device_s = self._timer.take(span_id)
            if device_s is None:
                continue
            step, phase, parent_id, span_index = self._span_device.pop(span_id)
            draft = self._device_drafts.get(step, self._draft)
            if draft is None:
                continue
            exclusive = max(0.0, device_s - self._child_device_s.pop(span_id, 0.0))
            draft.device_phase_s[phase] = draft.device_phase_s.get(phase, 0.0) + exclusive
            if parent_id >= 0:
                self._child_device_s[parent_id] = self._child_device_s.get(parent_id, 0.0) + device_s
            else:
                draft.device_busy_s += device_s
            draft.unresolved_spans -= 1
            if span_index >= 0:
                self._spans[span_index] = self._spans[span_index][:5] + (device_s,)


def _meta_fields(meta: StepMeta) -> tuple[Any, ...]:
    return (meta.samples, meta.tokens, meta.padding_tokens, meta.micro_steps, meta.grad_norm,
            meta.peak_memory_bytes)


def _misuse(frame: _Frame, stack: list[_Frame]) -> PhaseMisuseError:
    if not any(f is frame for f in stack):
        return PhaseMisuseError(f"phase '{frame[0]}' closed twice or never opened")
    return PhaseMisuseError(
        f"phase '{frame[0]}' closed while '{stack[-1][0]}' is still open inside it; "
        "phases must close in the reverse order they opened (use `with prof.phase(...)`)")
