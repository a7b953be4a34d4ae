"""The operator window: ``torch.profiler`` over a few steady-state steps, folded into phases.

``OpsProfiler`` drives ``torch.profiler.profile(schedule=...)`` (CPU activity, and CUDA kernels on
CUDA; shapes recorded; FLOPs where torch counts them): one profiler warm-up step, then ``steps``
recorded steps. Nothing is parsed while the script runs: the profiler's results are read once, when the
run stops.

Time base: torch.profiler times events on its own clock. One ``record_function`` marker, entered at
the start of the first recorded step, brackets a reading of the run's clock; the marker's midpoint
maps the profiler's times onto the run's clock (error: half the marker's length, about a microsecond).

Folding: ``PhaseSegments`` (a boundary observer) cuts the window's timeline into exclusive segments,
each owned by the innermost open phase (``other`` between phases). An operator belongs to the segment
its start falls in. Operators on other threads than the script's (autograd's device threads on CUDA,
the pin-memory thread) are folded only into ``backward``; elsewhere they are ``background``.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

MAX_SEGMENTS = 200_000     # phase segments kept for folding (window steps x boundaries)
MAX_OP_SPANS = 4_000       # top-level operator spans kept for the trace
TOP_PER_PHASE = 10         # operators kept per phase in the session
SYNC_MARKER = "throughput.sync"
BACKGROUND = "background"
_QUIET_KINETO = ("KINETO_LOG_LEVEL", "6")   # kineto prints 'profiler_start/stop' lines at level 5


@dataclass(frozen=True, slots=True, kw_only=True)
class OpCall:
    """One operator call, on the run's clock (seconds)."""

    name: str
    start_s: float
    end_s: float
    self_s: float
    device_self_s: float = 0.0
    flops: int = 0
    main_thread: bool = True
    top_level: bool = True


@dataclass(slots=True)
class OpTotals:
    """Totals of one operator name in one phase over the window (mutable while folding)."""

    self_s: float = 0.0
    device_self_s: float = 0.0
    calls: int = 0
    flops: int = 0


class PhaseSegments:
    """Boundary observer: the window's timeline as exclusive segments ``(start_s, phase)``."""

    def __init__(self) -> None:
        self._stack: list[str] = []
        self.starts: list[float] = []
        self.phases: list[str] = []
        self.end_s: float | None = None
        self.truncated = False

    def begin(self, now_s: float) -> None:
        self._cut(now_s)

    def finish(self, now_s: float) -> None:
        if self.end_s is None:
            self.end_s = now_s

    def opened(self, phase: str, now_s: float) -> None:
        self._stack.append(phase)
        self._cut(now_s)

    def closed(self, phase: str, now_s: float) -> None:
        if self._stack:
            self._stack.pop()
        self._cut(now_s)

    def _cut(self, now_s: float) -> None:
        if self.truncated:
            return
        if len(self.starts) >= MAX_SEGMENTS:   # the window ends here: later operators are left out
            self.truncated = True
            self.end_s = now_s
            return
        self.starts.append(now_s)
        self.phases.append(self._stack[-1] if self._stack else "other")

    def phase_at(self, t_s: float) -> str | None:
        """The phase that owned time ``t_s``; None outside the window."""
        i = bisect.bisect_right(self.starts, t_s) - 1
        if i < 0 or (self.end_s is not None and t_s >= self.end_s):
            return None
        return self.phases[i]


def fold(calls: Iterable[OpCall], segments: PhaseSegments) -> dict[tuple[str, str], OpTotals]:
    """Totals per (operator name, phase) over the window. Pure."""
    out: dict[tuple[str, str], OpTotals] = {}
    for call in calls:
        phase = segments.phase_at(call.start_s)
        if phase is None:
            continue
        if not call.main_thread and phase != "backward":
            phase = BACKGROUND
        totals = out.setdefault((call.name, phase), OpTotals())
        totals.self_s += call.self_s
        totals.device_self_s += call.device_self_s
        totals.calls += 1
        totals.flops += call.flops
    return out


def top_per_phase(totals: dict[tuple[str, str], OpTotals], k: int = TOP_PER_PHASE
                  ) -> list[tuple[str, str, OpTotals]]:
    """The ``k`` operators with the most self time (host + device) in each phase."""
    by_phase: dict[str, list[tuple[str, OpTotals]]] = {}
    for (name, phase), t in totals.items():
        by_phase.setdefault(phase, []).append((name, t))
    out = []
    for phase, items in by_phase.items():
        items.sort(key=lambda item: -(item[1].self_s + item[1].device_self_s))
        out += [(name, phase, t) for name, t in items[:k]]
    return out


class OpsProfiler:
    """``torch.profiler`` over ``steps`` recorded steps after one profiler warm-up step."""

    def __init__(self, steps: int, cuda: bool, now_s: Callable[[], float]) -> None:
        self.steps = steps
        self._cuda = cuda
        self._now_s = now_s
        self._prof: Any = None
        self._finished: Any = None
        self._sync_s: float | None = None
        self.note = ""

    def start(self) -> bool:
        """Start profiling (the profiler's warm-up step begins). False, with ``note``, if it cannot."""
        import torch
        from torch.profiler import ProfilerActivity, profile, schedule
        if torch.autograd.profiler._is_profiler_enabled:
            self.note = "operator window not recorded: the script runs its own torch.profiler"
            return False
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self._cuda else [])
        self._prof = profile(activities=activities, record_shapes=True, with_flops=True,
                             schedule=schedule(wait=0, warmup=1, active=self.steps, repeat=1),
                             on_trace_ready=self._ready)
        with _quiet_kineto():
            try:
                self._prof.start()
            except RuntimeError as e:
                self.note = f"operator window not recorded: torch.profiler did not start ({e})"
                self._prof = None
                return False
        return True

    def _ready(self, prof: Any) -> None:
        self._finished = prof   # parsed later, when the run stops

    def step(self, first_recorded: bool = False) -> None:
        """Tell the profiler a step ended; at the first recorded step, also place the clock marker."""
        if self._prof is None:
            return
        with _quiet_kineto():
            self._prof.step()
        if first_recorded:
            from torch.profiler import record_function
            with record_function(SYNC_MARKER):
                self._sync_s = self._now_s()

    def stop(self) -> None:
        """Stop early (the run ended inside the window); what was recorded is kept."""
        if self._prof is not None and self._finished is None:
            with _quiet_kineto():
                self._prof.stop()
            self._finished = self._prof
        self._prof = None

    @property
    def sync_s(self) -> float | None:
        """The run's clock read inside the ``SYNC_MARKER`` range (None before the first recorded step)."""
        return self._sync_s

    def calls(self) -> list[OpCall]:
        """Every operator call of the window on the run's clock (empty without a clock marker)."""
        if self._finished is None or self._sync_s is None:
            return []
        events = self._finished.events()
        marker = next((e for e in events if e.name == SYNC_MARKER), None)
        if marker is None:
            return []
        offset_s = self._sync_s - (marker.time_range.start + marker.time_range.end) / 2e6
        return [_op_call(e, offset_s, marker.thread) for e in events if _is_operator(e)]

    def export_trace(self, path: str) -> bool:
        if self._finished is None:
            return False
        self._finished.export_chrome_trace(path)
        return True


def _is_operator(e: Any) -> bool:
    device_type = str(getattr(e, "device_type", "CPU"))
    return (device_type.endswith("CPU") and not getattr(e, "is_user_annotation", False)
            and not e.name.startswith("ProfilerStep#") and e.name != SYNC_MARKER)


def _op_call(e: Any, offset_s: float, main_thread: int) -> OpCall:
    parent = e.cpu_parent
    top = parent is None or getattr(parent, "is_user_annotation", False) or parent.name.startswith("ProfilerStep#")
    device_us = getattr(e, "self_device_time_total", 0) or 0
    return OpCall(name=e.name, start_s=e.time_range.start / 1e6 + offset_s, end_s=e.time_range.end / 1e6 + offset_s,
                  self_s=e.self_cpu_time_total / 1e6, device_self_s=device_us / 1e6, flops=int(e.flops or 0),
                  main_thread=e.thread == main_thread, top_level=top)


@dataclass(slots=True)
class _quiet_kineto:
    """Silence kineto's 'profiler_start/stop' lines on stderr (the script's stderr stays its own) unless
    the user set KINETO_LOG_LEVEL; the variable is only set while the profiler starts and stops."""

    _set: bool = field(default=False)

    def __enter__(self) -> None:
        name, value = _QUIET_KINETO
        self._set = name not in os.environ
        if self._set:
            os.environ[name] = value

    def __exit__(self, *exc: object) -> None:
        if self._set:
            os.environ.pop(_QUIET_KINETO[0], None)
