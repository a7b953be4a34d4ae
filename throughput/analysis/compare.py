"""Compare two runs (A, the baseline, and B): per-phase times and shares side by side, throughput,
the speedup of B over A, and which phases moved beyond their noise.

A phase *moved* when its mean per-step time changed by more than its noise: half the wider of the
two runs' p5..p95 bands of that phase's per-step times, and at least ``MIN_MOVE_SHARE`` of A's mean
step time (so that microsecond jitter in tiny phases is not news). Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from throughput.analysis.breakdown import phase_order, phase_times
from throughput.analysis.rates import rates
from throughput.analysis.settings_diff import SettingDiff, environment_note, settings_diff
from throughput.analysis.stats import mean, quantile
from throughput.analysis.summary import steady_steps
from throughput.session.records import StepRecord
from throughput.session.session import Session

from throughput.thresholds import MIN_MOVE_SHARE, NOISE_BAND_FRACTION


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseDelta:
    phase: str
    a_mean_s: float
    b_mean_s: float
    a_share: float             # of step wall time, 0..1
    b_share: float
    delta_s: float             # b - a (negative: B is faster in this phase)
    ratio: float | None        # b / a, None when A spent no time in it
    noise_s: float             # the threshold the change had to exceed
    moved: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    a_run_id: str
    b_run_id: str
    a_steps: int
    b_steps: int
    a_step_mean_s: float
    b_step_mean_s: float
    a_step_median_s: float
    b_step_median_s: float
    speedup: float                   # A's mean step time / B's: > 1 means B is faster
    a_samples_per_s: float | None
    b_samples_per_s: float | None
    a_tokens_per_s: float | None
    b_tokens_per_s: float | None
    phases: tuple[PhaseDelta, ...]
    notes: tuple[str, ...]
    settings: tuple[SettingDiff, ...] = ()   # what differs between the runs (shown before the phases)

    @property
    def moved(self) -> tuple[PhaseDelta, ...]:
        return tuple(p for p in self.phases if p.moved)


def _per_phase(steps: Sequence[StepRecord]) -> dict[str, list[float]]:
    per_step = [phase_times(s) for s in steps]
    names: set[str] = set().union(*per_step) if per_step else set()
    return {n: [t.get(n, 0.0) for t in per_step] for n in names}


def _band(values: Sequence[float]) -> float:
    return quantile(values, 0.95) - quantile(values, 0.05) if values else 0.0


def compare(a: Session, b: Session) -> Comparison:
    """Compare B against A over their measured (post-warm-up) steps. Raises ValueError when either
    run has no measured step."""
    _, a_steps, _ = steady_steps(a)
    _, b_steps, _ = steady_steps(b)
    for name, steps in (("A", a_steps), ("B", b_steps)):
        if not steps:
            raise ValueError(f"run {name} has no measured steps; nothing to compare")
    a_wall = math.fsum(s.duration_s for s in a_steps)
    b_wall = math.fsum(s.duration_s for s in b_steps)
    a_mean, b_mean = a_wall / len(a_steps), b_wall / len(b_steps)
    a_phases, b_phases = _per_phase(a_steps), _per_phase(b_steps)
    deltas = []
    for name in phase_order(set(a_phases) | set(b_phases)):
        av, bv = a_phases.get(name, [0.0]), b_phases.get(name, [0.0])
        am, bm = mean(av), mean(bv)
        noise = max(NOISE_BAND_FRACTION * max(_band(av), _band(bv)), MIN_MOVE_SHARE * a_mean)
        deltas.append(PhaseDelta(
            phase=name, a_mean_s=am, b_mean_s=bm, a_share=math.fsum(av) / a_wall if a_wall > 0 else 0.0,
            b_share=math.fsum(bv) / b_wall if b_wall > 0 else 0.0, delta_s=bm - am,
            ratio=bm / am if am > 0 else None, noise_s=noise, moved=abs(bm - am) > noise,
        ))
    ra, rb = rates(a_steps), rates(b_steps)
    env_note = environment_note(a.info, b.info)
    notes = [env_note] if env_note else []
    return Comparison(
        a_run_id=a.info.run_id, b_run_id=b.info.run_id, a_steps=len(a_steps), b_steps=len(b_steps),
        a_step_mean_s=a_mean, b_step_mean_s=b_mean,
        a_step_median_s=quantile([s.duration_s for s in a_steps], 0.5),
        b_step_median_s=quantile([s.duration_s for s in b_steps], 0.5),
        speedup=a_mean / b_mean if b_mean > 0 else math.inf,
        a_samples_per_s=ra.samples_per_s, b_samples_per_s=rb.samples_per_s,
        a_tokens_per_s=ra.tokens_per_s, b_tokens_per_s=rb.tokens_per_s,
        phases=tuple(deltas), notes=tuple(notes), settings=settings_diff(a.info, b.info),
    )
