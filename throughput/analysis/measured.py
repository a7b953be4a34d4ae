"""The measured (post-warm-up) steps of a session as every analysis reads them, however they were kept.

When a session holds every step, everything is computed from the step records: quantiles exactly.
When a long run kept only a bounded set of steps, counts, totals, means, shares, min, max and the
standard deviation come from the exact aggregates (``session.retention``) and are identical to what
the full records would give; quantiles come from the sketches, within their stated bound
(``session.sketch``). Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from throughput.analysis.window import window_of
from throughput.analysis.stats import Distribution, distribution, quantile
from throughput.session.accumulate import StepAccumulator, ValueAccumulator
from throughput.session.exact import ExactSum, exact_variance
from throughput.session.records import OTHER, STANDARD_PHASES, StepRecord, exclusive_times
from throughput.session.retention import FOLDED_PHASE, StepTotals, ValueStats
from throughput.session.session import Session
from throughput.session.sketch import sketch_quantile


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseTotal:
    """One phase over the measured steps (a step without it counts as 0 s). Seconds."""

    phase: str
    total_s: float
    p5_s: float
    p50_s: float
    p95_s: float
    device_total_s: float | None       # None unless every measured step has device times


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """Exact counts and totals of the measured steps; ``exact_quantiles`` False when the quantiles
    (in ``durations`` and ``phases``) come from sketches."""

    count: int
    first_start_s: float
    last_end_s: float
    wall_s: float
    durations: Distribution
    phases: tuple[PhaseTotal, ...]      # standard phases in step order, then user phases, ``other`` last
    samples: int | None                 # None unless every measured step reported it
    tokens: int | None
    padding_tokens: int | None
    device_busy_s: float | None
    micro_steps: int
    exact_quantiles: bool


def phase_order(names: set[str]) -> list[str]:
    """Standard phases in step order, then user phases alphabetically, then ``FOLDED_PHASE`` (the names
    past the run's cap), ``other`` last."""
    standard = [p for p in STANDARD_PHASES if p in names and p != OTHER]
    custom = sorted(n for n in names if n not in STANDARD_PHASES and n != FOLDED_PHASE)
    return standard + custom + [n for n in (FOLDED_PHASE, OTHER) if n in names]


def measure_steps(steps: Sequence[StepRecord]) -> Measured | None:
    """Exact figures from step records; None for no steps."""
    if not steps:
        return None
    per_step = [exclusive_times(s.duration_s, s.phase_s) for s in steps]
    names: set[str] = set().union(*per_step)
    has_device = all(s.device_phase_s is not None for s in steps)
    phases = []
    for name in phase_order(names):
        values = [t.get(name, 0.0) for t in per_step]
        device = None
        if has_device and name != OTHER:
            device = math.fsum((s.device_phase_s or {}).get(name, 0.0) for s in steps)
        phases.append(PhaseTotal(phase=name, total_s=math.fsum(values), p5_s=quantile(values, 0.05),
                                 p50_s=quantile(values, 0.5), p95_s=quantile(values, 0.95), device_total_s=device))
    return Measured(
        count=len(steps), first_start_s=steps[0].start_s, last_end_s=steps[-1].end_s,
        wall_s=math.fsum(s.duration_s for s in steps), durations=distribution([s.duration_s for s in steps]),
        phases=tuple(phases), samples=_count_total([s.samples for s in steps]),
        tokens=_count_total([s.tokens for s in steps]), padding_tokens=_count_total([s.padding_tokens for s in steps]),
        device_busy_s=_busy_total([s.device_busy_s for s in steps]),
        micro_steps=sum(s.micro_steps for s in steps), exact_quantiles=True,
    )


def measure_totals(t: StepTotals) -> Measured | None:
    """Figures from a bounded capture's aggregates (quantiles from the sketches); None for no steps."""
    if t.count == 0:
        return None
    n = t.count
    has_device = t.device_steps == n

    def q(stats: ValueStats, p: float) -> float:
        return sketch_quantile(stats.sketch, p, implicit_zeros=n - stats.count)

    phases = tuple(
        PhaseTotal(phase=name, total_s=math.fsum(stats.total), p5_s=q(stats, 0.05), p50_s=q(stats, 0.5),
                   p95_s=q(stats, 0.95),
                   device_total_s=math.fsum(t.device_phase_s.get(name, ())) if has_device and name != OTHER else None)
        for name, stats in ((name, t.phase_s[name]) for name in phase_order(set(t.phase_s)))
    )
    d = t.duration_s
    total = math.fsum(d.total)
    variance = exact_variance(d.count, ExactSum.of_partials(d.total), ExactSum.of_partials(d.total_sq))
    durations = Distribution(count=n, mean_s=total / n, median_s=q(d, 0.5), p5_s=q(d, 0.05), p95_s=q(d, 0.95),
                             min_s=d.min, max_s=d.max, std_s=math.sqrt(variance))
    return Measured(
        count=n, first_start_s=t.first_start_s, last_end_s=t.last_end_s, wall_s=total, durations=durations,
        phases=phases, samples=t.samples if t.samples_steps == n else None,
        tokens=t.tokens if t.tokens_steps == n else None,
        padding_tokens=t.padding_tokens if t.padding_steps == n else None,
        device_busy_s=math.fsum(t.device_busy_s) if has_device else None,
        micro_steps=t.micro_steps, exact_quantiles=False,
    )


def steady_state(session: Session) -> tuple[tuple[StepRecord, ...], Measured | None, str | None]:
    """(warm-up steps, the measured steps' figures, note). If the run is too short to drop warm-up, all
    steps are measured and the note says so rather than reporting nothing.

    A session that kept only some steps re-renders with any warm-up up to the one it was captured with
    (the warm-up steps are always kept, and are added back exactly); a longer one raises ValueError."""
    window = window_of(session)
    k = session.info.warmup_steps
    if session.complete:
        steps = session.steps
        if window is not None:   # the operator window's steps ran slower: never part of the figures
            steps = tuple(s for s in steps if not window.excludes(s.index))
        if len(steps) > k:
            return steps[:k], measure_steps(steps[k:]), None
        if not steps:
            return (), None, None
        return (), measure_steps(steps), (f"only {len(steps)} step(s): warm-up ({k}) not excluded, "
                                          "figures include start-up costs")
    assert session.retention is not None
    totals = session.retention.measured
    captured = totals.first_index if totals is not None else session.retention.steps_seen
    if k > captured:
        raise ValueError(f"this session kept per-step detail only for a bounded set of steps; its warm-up "
                         f"can be lowered but not raised above the {captured} step(s) it was captured with "
                         f"(re-profile with --warmup-steps {k})")
    kept = tuple(s for s in session.steps if window is None or not window.excludes(s.index))
    warm = tuple(s for s in kept if s.index < k)
    if totals is None:
        return warm, measure_steps(tuple(s for s in kept if s.index >= k)), None
    if k < captured:   # steps held in full at capture (warm-up, a view window) that now count
        totals = _with_steps(totals, [s for s in kept if k <= s.index < captured])
    return warm, measure_totals(totals), None


def _with_steps(totals: StepTotals, steps: Sequence[StepRecord]) -> StepTotals:
    """``totals`` plus some earlier steps (exact for every aggregate)."""
    acc = StepAccumulator(min([totals.first_index] + [s.index for s in steps]))
    for step in steps:
        acc.add_record(step)
    extra = acc.freeze()
    merged = StepAccumulator(acc.first_index)
    merged.count = extra.count + totals.count
    merged.first_start_s = extra.first_start_s if extra.count else totals.first_start_s
    merged.last_end_s = totals.last_end_s
    for part in (extra, totals):
        merged.duration.add_stats(part.duration_s)
        for name, stats in part.phase_s.items():
            merged.phases.setdefault(name, ValueAccumulator()).add_stats(stats)
        merged.device_steps += part.device_steps
        merged.device_busy.add(ExactSum.of_partials(part.device_busy_s))
        for name, partials in part.device_phase_s.items():
            merged.device_phase_sums.setdefault(name, ExactSum()).add(ExactSum.of_partials(partials))
        for slot, value in enumerate((part.samples, part.samples_steps, part.tokens, part.tokens_steps,
                                      part.padding_tokens, part.padding_steps)):
            merged.counts[slot] += value
        merged.micro_steps += part.micro_steps
        if part.peak_memory_bytes is not None:
            merged.peak_memory_bytes = max(merged.peak_memory_bytes or 0, part.peak_memory_bytes)
    return merged.freeze()


def _count_total(values: Sequence[int | None]) -> int | None:
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def _busy_total(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return math.fsum(v for v in values if v is not None)


def phase_means(m: Measured) -> Mapping[str, float]:
    """Mean exclusive seconds per step for each phase."""
    return {p.phase: p.total_s / m.count for p in m.phases}
