"""Per-step series for plots and traces, from the steps a session kept (bounded), and rolling bands.

A long run keeps full detail for the warm-up, the last steps, the slowest and an even thinning of the
rest; the bands are drawn over the evenly kept ones (the grid and the last window), so the slowest
steps kept besides do not pull them up. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from throughput.analysis.breakdown import phase_order, phase_times
from throughput.analysis.rates import real_tokens
from throughput.session.records import OTHER
from throughput.session.session import Session


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSeries:
    """Aligned per-step lists (index i is step ``steps[i]``). Rates are None where not readable."""

    steps: tuple[int, ...]
    end_s: tuple[float, ...]                       # seconds since the first step started
    duration_s: tuple[float, ...]
    phases: tuple[str, ...]
    phase_s: dict[str, tuple[float, ...]]          # phase -> exclusive seconds per step
    samples_per_s: tuple[float | None, ...]
    tokens_per_s: tuple[float | None, ...]
    loss: tuple[float | None, ...]
    warmup_steps: int
    even: tuple[bool, ...] = ()                    # kept on the thinning grid or in the last window


@dataclass(frozen=True, slots=True, kw_only=True)
class Band:
    """Rolling median, mean and p5..p95 of a per-step value over the last ``window`` evenly kept steps
    (fewer at the start); ``steps`` are the step indices the windows end at."""

    steps: tuple[int, ...]
    median: tuple[float, ...]
    mean: tuple[float, ...]
    p5: tuple[float, ...]
    p95: tuple[float, ...]
    window: int


def step_series(session: Session) -> StepSeries:
    steps = session.steps
    per_step = [phase_times(s) for s in steps]
    names = phase_order(set().union(*per_step)) if per_step else []
    t0 = steps[0].start_s if steps else 0.0

    def rate(count: int | None, duration_s: float) -> float | None:
        return count / duration_s if count is not None and duration_s > 0 else None

    return StepSeries(
        steps=tuple(s.index for s in steps),
        end_s=tuple(s.end_s - t0 for s in steps),
        duration_s=tuple(s.duration_s for s in steps),
        phases=tuple(names),
        phase_s={n: tuple(t.get(n, 0.0) for t in per_step) for n in names},
        samples_per_s=tuple(rate(s.samples, s.duration_s) for s in steps),
        tokens_per_s=tuple(rate(None if s.tokens is None else int(real_tokens(s.tokens, s.padding_tokens)),
                                s.duration_s) for s in steps),
        loss=tuple(s.loss for s in steps),
        warmup_steps=min(session.info.warmup_steps, session.steps_seen),
        even=_even(session),
    )


def top_phases(series: StepSeries, keep: int) -> StepSeries:
    """``series`` with at most ``keep + 1`` phases: the ``keep`` with the most time over its measured
    steps (in ``series.phases`` order), and the rest added up per step as one phase named
    ``"<n> more phases"`` (after them, before ``other`` if that is kept). Unchanged when it has at most
    ``keep + 1`` phases already: folding one phase into a "1 more" phase would say nothing."""
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    if len(series.phases) <= keep + 1:
        return series
    measured = np.asarray([i >= series.warmup_steps for i in series.steps], dtype=bool)
    totals = {n: float(np.asarray(series.phase_s[n], dtype=np.float64)[measured].sum()) for n in series.phases}
    # the largest totals; ties go to the earlier phase (standard phases come first in series.phases)
    position = {n: i for i, n in enumerate(series.phases)}
    ranked = sorted(series.phases, key=lambda n: (-totals[n], position[n]))
    kept = set(ranked[:keep])
    rest = [n for n in series.phases if n not in kept]
    folded = f"{len(rest)} more phases"
    rest_s = np.sum([np.asarray(series.phase_s[n], dtype=np.float64) for n in rest], axis=0)
    names = [n for n in series.phases if n in kept and n != OTHER] + [folded] + ([OTHER] if OTHER in kept else [])
    phase_s = {n: series.phase_s[n] for n in names if n != folded}
    phase_s[folded] = tuple(rest_s.tolist())
    return replace(series, phases=tuple(names), phase_s={n: phase_s[n] for n in names})


def _even(session: Session) -> tuple[bool, ...]:
    r = session.retention
    if r is None or session.complete:
        return tuple(True for _ in session.steps)
    last = session.steps[-1].index if session.steps else 0
    recent_from = last - r.policy.recent_steps + 1
    return tuple(s.index % r.sample_stride == 0 or s.index >= recent_from for s in session.steps)


def measured_points(series: StepSeries, values: Sequence[float | None]) -> tuple[list[int], list[float]]:
    """(step indices, values) of the evenly kept measured steps that have a value."""
    even = series.even or (True,) * len(series.steps)
    pairs = [(i, v) for i, v, e in zip(series.steps, values, even)
             if e and v is not None and i >= series.warmup_steps]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def rolling_band(steps: Sequence[int], values: Sequence[float], window: int | None = None) -> Band | None:
    """Rolling statistics over ``window`` consecutive points (default: ~1/40 of them, 5..101); None
    for fewer than 2 points."""
    n = len(values)
    if n < 2:
        return None
    w = window if window is not None else max(5, min(101, n // 40))
    w = max(1, min(w, n))
    x = np.asarray(values, dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(x, w)
    p5, median, p95 = np.percentile(windows, [5, 50, 95], axis=1)
    mean = windows.mean(axis=1)
    # the first w - 1 points: the windows that fit so far (the curve starts at the first step)
    head = [x[:i + 1] for i in range(w - 1)]
    q = np.array([np.percentile(v, [5, 50, 95]) for v in head]).reshape(len(head), 3)
    return Band(steps=tuple(steps), median=tuple(q[:, 1].tolist() + median.tolist()),
                mean=tuple([float(v.mean()) for v in head] + mean.tolist()),
                p5=tuple(q[:, 0].tolist() + p5.tolist()), p95=tuple(q[:, 2].tolist() + p95.tolist()), window=w)
