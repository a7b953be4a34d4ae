"""Compare two runs (A, the baseline, and B): per-phase times and shares side by side, throughput,
the speedup of B over A, and which phases moved beyond their noise.

A phase *moved* when its mean per-step time changed by more than its noise: half the wider of the
two runs' p5..p95 bands of that phase's per-step times, and at least ``MIN_MOVE_SHARE`` of A's mean
step time (so that microsecond jitter in tiny phases is not news). Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from throughput.analysis.measured import PhaseTotal, phase_order, steady_state
from throughput.analysis.rates import rates_of
from throughput.analysis.settings_diff import SettingDiff, environment_note, settings_diff
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


def compare(a: Session, b: Session) -> Comparison:
    """Compare B against A over their measured (post-warm-up) steps. Raises ValueError when either
    run has no measured step."""
    a_m, b_m = steady_state(a)[1], steady_state(b)[1]
    if a_m is None or b_m is None:
        raise ValueError(f"run {'A' if a_m is None else 'B'} has no measured steps; nothing to compare")
    a_mean, b_mean = a_m.wall_s / a_m.count, b_m.wall_s / b_m.count
    a_phases = {p.phase: p for p in a_m.phases}
    b_phases = {p.phase: p for p in b_m.phases}
    deltas = []
    for name in phase_order(set(a_phases) | set(b_phases)):
        ap, bp = a_phases.get(name), b_phases.get(name)
        am = ap.total_s / a_m.count if ap is not None else 0.0
        bm = bp.total_s / b_m.count if bp is not None else 0.0
        noise = max(NOISE_BAND_FRACTION * max(_band(ap), _band(bp)), MIN_MOVE_SHARE * a_mean)
        deltas.append(PhaseDelta(
            phase=name, a_mean_s=am, b_mean_s=bm,
            a_share=ap.total_s / a_m.wall_s if ap is not None and a_m.wall_s > 0 else 0.0,
            b_share=bp.total_s / b_m.wall_s if bp is not None and b_m.wall_s > 0 else 0.0, delta_s=bm - am,
            ratio=bm / am if am > 0 else None, noise_s=noise, moved=abs(bm - am) > noise,
        ))
    ra, rb = rates_of(a_m), rates_of(b_m)
    env_note = environment_note(a.info, b.info)
    notes = [env_note] if env_note else []
    return Comparison(
        a_run_id=a.info.run_id, b_run_id=b.info.run_id, a_steps=a_m.count, b_steps=b_m.count,
        a_step_mean_s=a_mean, b_step_mean_s=b_mean,
        a_step_median_s=a_m.durations.median_s, b_step_median_s=b_m.durations.median_s,
        speedup=a_mean / b_mean if b_mean > 0 else math.inf,
        a_samples_per_s=ra.samples_per_s, b_samples_per_s=rb.samples_per_s,
        a_tokens_per_s=ra.tokens_per_s, b_tokens_per_s=rb.tokens_per_s,
        phases=tuple(deltas), notes=tuple(notes), settings=settings_diff(a.info, b.info),
    )


def _band(p: PhaseTotal | None) -> float:
    """The p5..p95 width of a phase's per-step times (0 when the run has no such phase)."""
    return p.p95_s - p.p5_s if p is not None else 0.0
