"""Per-phase breakdown of step time: exclusive times, shares, and the derived ``other``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from throughput.analysis.stats import mean, quantile
from throughput.session.records import STANDARD_PHASES, StepRecord

OTHER = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseStats:
    """One phase over the measured steps. ``share`` is a fraction (0..1) of total step wall time."""

    phase: str
    total_s: float
    mean_s: float        # per step (steps without the phase count as 0 s)
    p50_s: float
    p95_s: float
    share: float
    device_mean_s: float | None = None   # CUDA event time per step, None on CPU


def phase_times(step: StepRecord) -> dict[str, float]:
    """Exclusive host seconds per phase for one step, ``other`` included; they sum to the step's wall
    time (phases that overrun the wall time, which the recorder cannot produce, are scaled down)."""
    times = {k: max(0.0, v) for k, v in step.phase_s.items()}
    covered = math.fsum(times.values())
    if covered > step.duration_s > 0:
        scale = step.duration_s / covered
        times = {k: v * scale for k, v in times.items()}
    times[OTHER] = step.other_s
    return times


def phase_order(names: set[str]) -> list[str]:
    """Standard phases in step order, then user phases alphabetically, ``other`` last."""
    standard = [p for p in STANDARD_PHASES if p in names and p != OTHER]
    custom = sorted(n for n in names if n not in STANDARD_PHASES)
    return standard + custom + ([OTHER] if OTHER in names else [])


def breakdown(steps: Sequence[StepRecord]) -> tuple[PhaseStats, ...]:
    """Per-phase statistics over ``steps``; shares sum to 1 (0 for all when there is no time)."""
    if not steps:
        return ()
    per_step = [phase_times(s) for s in steps]
    names: set[str] = set().union(*per_step)
    wall = math.fsum(s.duration_s for s in steps)
    has_device = all(s.device_phase_s is not None for s in steps)
    out = []
    for name in phase_order(names):
        values = [t.get(name, 0.0) for t in per_step]
        total = math.fsum(values)
        device = None
        if has_device and name != OTHER:
            device = mean([(s.device_phase_s or {}).get(name, 0.0) for s in steps])
        out.append(PhaseStats(
            phase=name, total_s=total, mean_s=total / len(steps), p50_s=quantile(values, 0.5),
            p95_s=quantile(values, 0.95), share=total / wall if wall > 0 else 0.0, device_mean_s=device,
        ))
    return tuple(out)
