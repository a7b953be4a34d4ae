"""The view window: a few steady-state steps looked at closely (operators, memory per phase, a CUDA
memory snapshot), and ``HookChain``, which runs it beside the telemetry controller.

Schedule, with ``W`` warm-up steps and a window of ``N`` steps:

- memory only (the default): phase boundaries of steps ``W .. W+N-1`` are read (a few microseconds
  each); the steps stay in the steady-state figures.
- with operators (``ops``) or a memory snapshot: torch.profiler starts as step ``W`` begins (its
  warm-up step), steps ``W+1 .. W+N`` are recorded, and the profiler stops as step ``W+N+1`` begins
  (that step pays for it). Steps ``W .. W+N+1`` are excluded from the steady-state figures; the
  ``ops_window`` event says so and carries their wall time so the report can state the slowdown.

Everything is read and written to the session when the run stops, never inside a step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from throughput.capture.memory import MemoryReader, PhaseMemory, default_reader
from throughput.capture.ops import MAX_OP_SPANS, SYNC_MARKER, OpsProfiler, PhaseSegments, fold, top_per_phase

DEFAULT_WINDOW_STEPS = 5
TORCH_TRACE_NAME = "torch_trace.json"   # report/trace_merge.py reads it under this name
SNAPSHOT_NAME = "memory_snapshot.pickle"


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowOptions:
    """What the window records. ``out_dir`` receives torch's own trace and the memory snapshot."""

    warmup_steps: int
    steps: int = DEFAULT_WINDOW_STEPS
    ops: bool = False
    memory: bool = True
    memory_snapshot: bool = False
    out_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"the window needs at least 1 step, got {self.steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")

    @property
    def intrusive(self) -> bool:
        """True when the window slows its steps (and they are excluded from the figures)."""
        return self.ops or self.memory_snapshot


class ViewWindow:
    """A Profiler hook (``start``/``on_step``/``stop``) that records the window. ``reader`` replaces the
    memory reader (tests pass a fake allocator)."""

    def __init__(self, options: WindowOptions, reader: MemoryReader | None = None) -> None:
        self.options = options
        self._reader = reader
        self._memory: PhaseMemory | None = None
        self._segments: PhaseSegments | None = None
        self._ops: OpsProfiler | None = None
        self._snapshot = False
        self._slowed = False     # a profiler or the allocator's history recorder really ran in the window
        self._rec: Any = None
        self._notes: list[str] = []
        self._first = options.warmup_steps + (1 if options.intrusive else 0)   # first recorded step
        self._last = self._first + options.steps - 1
        self._done = False

    def start(self, prof: Any) -> None:
        if self.options.intrusive:   # the window's slower steps stay in full, out of a long run's totals
            prof.recorder.hold_in_full(self._last + 2)
        self._advance(prof, 0)

    def on_step(self, prof: Any, index: int) -> None:
        if not self._done:
            self._advance(prof, index + 1)

    def _advance(self, prof: Any, next_step: int) -> None:
        """Called as step ``next_step`` begins."""
        o = self.options
        if o.intrusive and next_step == o.warmup_steps:
            self._begin_intrusive(prof)
        if self._ops is not None and o.warmup_steps < next_step <= self._last + 1:
            self._ops.step(first_recorded=next_step == self._first)
        if next_step == self._first:
            self._observe(prof)
        if self._memory is not None:
            self._memory.step = next_step
        if next_step == self._last + 1:
            self._end_observing(prof)
            self._done = True

    def _begin_intrusive(self, prof: Any) -> None:
        if self.options.ops:
            ops = OpsProfiler(self.options.steps, prof.device == "cuda", prof.clock.now_s)
            if ops.start():
                self._ops = ops
            else:
                self._notes.append(ops.note)
        if self.options.memory_snapshot:
            self._snapshot = _start_snapshot(prof.device, self._notes)
        self._slowed = self._ops is not None or self._snapshot

    def _observe(self, prof: Any) -> None:
        observers: list[Any] = []
        if self.options.memory:
            reader = self._reader or default_reader(prof.device, reset_peaks=self.options.intrusive)
            if reader is not None:
                self._memory = PhaseMemory(reader)
                observers.append(self._memory)
        if self._ops is not None:
            self._segments = PhaseSegments()
            self._segments.begin(prof.clock.now_s())
            observers.append(self._segments)
        if observers:
            self._rec = prof.recorder
            self._rec.observe(observers[0] if len(observers) == 1 else _Both(observers))

    def _end_observing(self, prof: Any) -> None:
        if self._rec is not None:
            self._rec.observe(None)
            self._rec = None
        if self._segments is not None and self._segments.end_s is None:
            self._segments.finish(prof.clock.now_s())
        if self._memory is not None:
            self._memory.step = -1
        if self._snapshot:
            self._snapshot = False
            _dump_snapshot(self.options.out_dir, prof, self._notes)

    def stop(self, prof: Any) -> None:
        """The run stopped: finish what is open, then give events, samples and notes to ``prof``."""
        if not self._done:
            self._end_observing(prof)
        if self._slowed:
            self._report_window(prof)
        if self._ops is not None:
            self._ops.stop()
            self._report_ops(prof)
        if self._memory is not None:
            for event in self._memory.events():
                prof.event(event.kind, event.message, **event.detail)
            prof.add_telemetry(self._memory.samples())
            self._memory.reader.close()
        for note in self._notes:
            prof.add_note(note)

    def _report_window(self, prof: Any) -> None:
        """The ``window`` event: which steps were recorded, which are excluded, and their wall time."""
        done = prof.steps_done
        last = min(self._last, done - 1)
        if last < self._first:
            self._notes.append("view window: the run ended before a window step was recorded")
            return
        walls = [prof.recorder.step_times(i)[0] for i in range(self._first, last + 1)]
        sync: dict[str, float | int | str | bool] = {}
        if self._ops is not None and self._ops.sync_s is not None:   # where torch.profiler's clock meets ours
            sync = {"sync_marker": SYNC_MARKER, "sync_s": self._ops.sync_s}
        prof.event("window", f"view window: steps {self._first}-{last}", first_step=self._first, last_step=last,
                   excluded_first=self.options.warmup_steps, excluded_last=min(self._last + 1, done - 1),
                   window_wall_s=sum(walls), ops=self._ops is not None, memory_snapshot=self.options.memory_snapshot,
                   **sync)

    def _report_ops(self, prof: Any) -> None:
        assert self._ops is not None and self._segments is not None
        calls = self._ops.calls()
        if not calls:
            self._notes.append("operator window: torch.profiler recorded no operator in the window")
            return
        for name, phase, t in top_per_phase(fold(calls, self._segments)):
            detail: dict[str, float | int | str | bool] = {"name": name, "phase": phase, "self_s": t.self_s,
                                                           "calls": t.calls, "flops": t.flops}
            if prof.device == "cuda":
                detail["device_self_s"] = t.device_self_s
            prof.event("operator", f"{name} in {phase}", **detail)
        if self._segments.truncated:
            self._notes.append("operator window: cut short after the first phase boundaries (cap); operators "
                               "after it are left out")
        self._report_spans(prof, calls)
        self._export(prof)

    def _report_spans(self, prof: Any, calls: list[Any]) -> None:
        assert self._segments is not None
        kept = 0
        for call in calls:
            if not (call.main_thread and call.top_level):
                continue
            phase = self._segments.phase_at(call.start_s)
            if phase is None:
                continue
            if kept == MAX_OP_SPANS:
                prof.add_note(f"trace: only the first {MAX_OP_SPANS} operator spans of the window are drawn")
                return
            prof.event("op_span", call.name, name=call.name, phase=phase, start_s=call.start_s, end_s=call.end_s)
            kept += 1

    def _export(self, prof: Any) -> None:
        out = self.options.out_dir
        if out is None or self._ops is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        if self._ops.export_trace(str(out / TORCH_TRACE_NAME)):
            prof.add_artifact(str(out / TORCH_TRACE_NAME))


class _Both:
    """Several boundary observers behind one."""

    def __init__(self, observers: list[Any]) -> None:
        self._observers = observers

    def opened(self, phase: str, now_s: float) -> None:
        for o in self._observers:
            o.opened(phase, now_s)

    def closed(self, phase: str, now_s: float) -> None:
        for o in self._observers:
            o.closed(phase, now_s)


def _start_snapshot(device: str, notes: list[str]) -> bool:
    if device != "cuda":
        notes.append("--memory-snapshot needs CUDA (the caching allocator's history); not recorded")
        return False
    import torch
    torch.cuda.memory._record_memory_history(max_entries=100_000)
    return True


def _dump_snapshot(out_dir: Path | None, prof: Any, notes: list[str]) -> None:
    import torch
    try:
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            torch.cuda.memory._dump_snapshot(str(out_dir / SNAPSHOT_NAME))
            prof.add_artifact(str(out_dir / SNAPSHOT_NAME))
        else:
            notes.append("memory snapshot not saved: no report folder")
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)


class HookChain:
    """Several Profiler hooks as one (``Profiler(telemetry=HookChain(controller, window))``)."""

    def __init__(self, *hooks: Any) -> None:
        self.hooks = tuple(h for h in hooks if h is not None)
        self._on_step = tuple(f for h in self.hooks if (f := getattr(h, "on_step", None)) is not None)

    def start(self, prof: Any) -> None:
        for h in self.hooks:
            h.start(prof)

    def on_step(self, prof: Any, index: int) -> None:
        for f in self._on_step:
            f(prof, index)

    def stop(self, prof: Any) -> None:
        for h in reversed(self.hooks):
            h.stop(prof)
