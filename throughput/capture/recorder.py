"""The recorder: a stack of open phases and the steps they belong to.

Hot path (``open``/``close``/``end_step``) does a clock read, a few dict updates and, on CUDA, one
event record; no allocation beyond a small frame object, no device synchronization.

Attribution is exclusive: while a child phase is open, its parent's clock is paused, so the phases of
a step add up to at most the step's wall time and the rest is ``other``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from throughput.session.records import Span, StepRecord
from throughput.timing.clock import Clock, time_reader
from throughput.timing.cuda import DeviceTimer


class PhaseMisuseError(RuntimeError):
    """The phase API was used in a way that would give wrong numbers (the message says how)."""


class _Frame:
    """An open phase. Its depth and parent are read from the stack when it closes, not stored."""

    __slots__ = ("phase", "start_s", "resume_s", "exclusive_s", "span_id")

    def __init__(self, phase: str, now_s: float, span_id: int) -> None:
        self.phase = phase
        self.start_s = now_s
        self.resume_s = now_s
        self.exclusive_s = 0.0
        self.span_id = span_id


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
        self._clock = clock
        self._now = time_reader(clock)
        self._timer = device_timer
        self._max_spans = max_spans
        self.owner_thread = threading.get_ident()
        self._stack: list[_Frame] = []
        self._draft: _StepDraft | None = None
        self._last_end_s: float | None = None
        self._drafts_waiting_device: dict[int, _StepDraft] = {}
        self._finished: dict[int, tuple[_StepDraft, float, StepMeta, Any]] = {}
        # Spans are kept as plain tuples on the hot path (phase, step, start_s, end_s, depth, device_s)
        # and become frozen Span records only when results are asked for.
        self._spans: list[tuple[str, int, float, float, int, float | None]] = []
        self._span_device: dict[int, tuple[int, str, int, int]] = {}  # id -> step, phase, parent, span idx
        self._child_device_s: dict[int, float] = {}
        self._next_span_id = 0
        self.spans_dropped = 0

    # -- phases ---------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._stack)

    def open(self, phase: str) -> _Frame:
        now = self._now()
        if self._draft is None:
            self._draft = _StepDraft(index=len(self._finished),
                                     start_s=self._last_end_s if self._last_end_s is not None else now)
        stack = self._stack
        if stack:   # pause the parent: attribution is exclusive
            parent = stack[-1]
            parent.exclusive_s += now - parent.resume_s
        frame = _Frame(phase, now, self._next_span_id)
        self._next_span_id += 1
        stack.append(frame)
        if self._timer is not None:
            self._timer.start(frame.span_id)
        return frame

    def close(self, frame: _Frame) -> None:
        now = self._now()
        stack = self._stack
        if not stack or stack[-1] is not frame:
            inner = stack[-1].phase if stack else None
            raise PhaseMisuseError(
                f"phase '{frame.phase}' closed while '{inner}' is still open inside it; "
                "phases must close in the reverse order they opened (use `with prof.phase(...)`)"
                if inner is not None else f"phase '{frame.phase}' closed twice or never opened"
            )
        stack.pop()
        draft = self._draft
        assert draft is not None
        phase_s = draft.phase_s
        phase_s[frame.phase] = phase_s.get(frame.phase, 0.0) + frame.exclusive_s + (now - frame.resume_s)
        if stack:   # the parent's clock runs again
            stack[-1].resume_s = now
        span_index = -1
        if len(self._spans) < self._max_spans:
            span_index = len(self._spans)
            self._spans.append((frame.phase, draft.index, frame.start_s, now, len(stack), None))
        else:
            self.spans_dropped += 1
        if self._timer is not None:
            self._timer.stop(frame.span_id)
            parent_id = stack[-1].span_id if stack else -1
            self._span_device[frame.span_id] = (draft.index, frame.phase, parent_id, span_index)
            draft.unresolved_spans += 1

    def close_through(self, frame: _Frame) -> tuple[str, ...]:
        """Close every phase opened after ``frame``, then ``frame`` itself (innermost first).

        For instrumentation that learns late that a phase was abandoned (an exception escaped the code
        it wrapped and its end hook never ran). A frame that is not open closes nothing.
        """
        if frame not in self._stack:
            return ()
        closed: list[str] = []
        while self._stack:
            top = self._stack[-1]
            closed.append(top.phase)
            self.close(top)
            if top is frame:
                break
        return tuple(closed)

    def close_all(self) -> tuple[str, ...]:
        """Close every open phase (innermost first), e.g. when the run dies inside one."""
        closed = tuple(f.phase for f in reversed(self._stack))
        while self._stack:
            self.close(self._stack[-1])
        return closed

    # -- steps ----------------------------------------------------------------------------------
    def end_step(self, meta: StepMeta = StepMeta(), loss: Any = None) -> int:
        """Close the current step at now. ``loss`` may be a tensor; it is converted lazily."""
        if self._stack:
            raise PhaseMisuseError(
                f"step() called inside phase '{self._stack[-1].phase}'; end the phase first "
                "(a step is closed between phases, after the optimizer update)"
            )
        now = self._now()
        draft = self._draft
        if draft is None:  # a step with no phase at all: it still has a wall time
            start = self._last_end_s if self._last_end_s is not None else now
            draft = _StepDraft(index=len(self._finished), start_s=start)
        self._draft = None
        self._last_end_s = now
        self._finished[draft.index] = (draft, now, meta, loss)
        if self._timer is not None:
            self._timer.poll()
            self._absorb_device_times()
        return draft.index

    @property
    def steps_done(self) -> int:
        return len(self._finished)

    def step_times(self, index: int) -> tuple[float, dict[str, float]]:
        """(wall seconds, exclusive host seconds per phase) of finished step ``index``."""
        draft, end_s, _, _ = self._finished[index]
        return end_s - draft.start_s, dict(draft.phase_s)

    @property
    def spans_kept(self) -> int:
        return len(self._spans)

    # -- results --------------------------------------------------------------------------------
    def finish_device(self) -> None:
        """Resolve all device timings: the one synchronize of the run (CUDA only)."""
        if self._timer is not None:
            self._timer.finish()
            self._absorb_device_times()

    def records(self, losses: dict[int, float | None] | None = None) -> tuple[list[StepRecord], list[Span]]:
        """Frozen step records and spans so far. ``losses`` maps step index to a converted loss."""
        losses = losses or {}
        out: list[StepRecord] = []
        for index in sorted(self._finished):
            draft, end_s, meta, _ = self._finished[index]
            has_device = self._timer is not None
            out.append(StepRecord(
                index=index, start_s=draft.start_s, end_s=end_s, phase_s=dict(draft.phase_s),
                micro_steps=meta.micro_steps, samples=meta.samples, tokens=meta.tokens,
                padding_tokens=meta.padding_tokens, loss=losses.get(index), grad_norm=meta.grad_norm,
                device_phase_s=dict(draft.device_phase_s) if has_device and not draft.unresolved_spans else None,
                device_busy_s=draft.device_busy_s if has_device and not draft.unresolved_spans else None,
                peak_memory_bytes=meta.peak_memory_bytes,
            ))
        spans = [Span(phase=p, step=i, start_s=a, end_s=b, depth=d, device_s=dev)
                 for p, i, a, b, d, dev in self._spans]
        return out, spans

    def pending_losses(self) -> dict[int, Any]:
        return {i: v[3] for i, v in self._finished.items() if v[3] is not None}

    def _absorb_device_times(self) -> None:
        assert self._timer is not None
        for span_id in list(self._span_device):
            device_s = self._timer.take(span_id)
            if device_s is None:
                continue
            step, phase, parent_id, span_index = self._span_device.pop(span_id)
            draft = self._finished[step][0] if step in self._finished else self._draft
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
