"""Per-phase breakdown of step time: exclusive times, shares, and the derived ``other``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from throughput.analysis.measured import Measured, measure_steps, phase_order
from throughput.session.records import OTHER, StepRecord, exclusive_times

__all__ = ["OTHER", "PhaseStats", "breakdown", "phase_order", "phase_stats", "phase_times"]


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
    return exclusive_times(step.duration_s, step.phase_s)


def breakdown(steps: Sequence[StepRecord]) -> tuple[PhaseStats, ...]:
    """Per-phase statistics over ``steps``; shares sum to 1 (0 for all when there is no time)."""
    measured = measure_steps(steps)
    return phase_stats(measured) if measured is not None else ()


def phase_stats(m: Measured) -> tuple[PhaseStats, ...]:
    """Per-phase statistics of measured steps, however they were kept (see ``analysis.measured``)."""
    wall = m.wall_s
    return tuple(PhaseStats(
        phase=p.phase, total_s=p.total_s, mean_s=p.total_s / m.count, p50_s=p.p50_s, p95_s=p.p95_s,
        share=p.total_s / wall if wall > 0 else 0.0,
        device_mean_s=p.device_total_s / m.count if p.device_total_s is not None else None,
    ) for p in m.phases)
