"""The operator window of a session: which steps it covered, what it cost, and the top operators per
phase. Pure: reads the ``window`` and ``operator`` events the capture wrote (``capture/window.py``).

Per-step figures divide the window's totals by its recorded steps; ``share`` is an operator's self
time over the window's total step wall time (host self time; on CUDA ``device_self_s`` is the time of
the kernels it launched, on the device's own timeline).
"""

from __future__ import annotations

from dataclasses import dataclass

from throughput.analysis.measured import phase_order
from throughput.analysis.window import Window, window_of
from throughput.session.records import Event
from throughput.session.session import Session


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorStat:
    name: str
    phase: str
    self_s: float                  # host self time per window step
    calls: float                   # calls per window step
    share: float                   # of the window's step wall time, 0..1
    device_self_s: float | None    # device self time per window step (CUDA), None on CPU
    flops: float                   # FLOPs per window step that torch counted (0 where it counts none)


@dataclass(frozen=True, slots=True, kw_only=True)
class Operators:
    window_steps: tuple[int, int]
    window_step_s: float           # mean wall time of a window step
    slowdown: float | None         # window step time / steady-state step time (None: nothing to compare)
    top: tuple[OperatorStat, ...]  # phases in step order, each phase's operators by self time


def operators(session: Session, steady_step_s: float | None) -> Operators | None:
    """The operator table, or None when the run recorded no operator window. ``steady_step_s`` is the
    mean steady-state step time (outside the window), for the slowdown."""
    window = window_of(session)
    stats = [e for e in session.events if e.kind == "operator"]
    if window is None or not stats or window.wall_s <= 0:
        return None
    n = window.steps
    top = [_stat(e, n, window.wall_s) for e in stats]
    order = {p: i for i, p in enumerate(phase_order({s.phase for s in top}))}
    top.sort(key=lambda s: (order[s.phase], -(s.self_s + (s.device_self_s or 0.0))))
    step_s = window.wall_s / n
    return Operators(window_steps=(window.first_step, window.last_step), window_step_s=step_s,
                     slowdown=step_s / steady_step_s if steady_step_s else None, top=tuple(top))


def _stat(e: Event, steps: int, wall_s: float) -> OperatorStat:
    d = e.detail
    self_s = float(d["self_s"])
    device = d.get("device_self_s")
    return OperatorStat(name=str(d["name"]), phase=str(d["phase"]), self_s=self_s / steps,
                        calls=int(d["calls"]) / steps, share=self_s / wall_s,
                        device_self_s=float(device) / steps if device is not None else None,
                        flops=int(d.get("flops", 0)) / steps)
