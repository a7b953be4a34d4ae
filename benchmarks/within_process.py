"""Within-process comparisons for benchmarks whose processes differ from each other more than the effect
they measure (memory layout, cache aliasing: on a shared VM some processes of the same script run every
step 40% slower than others). Pure: numbers in, numbers out; no torch, no clock.

The method is a difference in differences:

1. in each process, ``after_over_before``: the median of a block of steady steps after an intervention
   (e.g. the operator window) over the median of a block before it: the process's own layout cancels;
2. per mode, the median of those ratios over processes (``Spread`` gives the quartiles and range too);
3. ``ratio_of_medians(treated, control)``: the treated mode's median ratio over the control's (the same
   step blocks in processes without the intervention), so drift that every process has (allocator
   adaptation, caches warming, the machine's load changing) cancels too;
4. ``bootstrap_ci``: a percentile interval of that figure, resampling the processes of each mode, so the
   verdict says whether the noise allows the claim at all (``verdict``).
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

__all__ = ["Spread", "after_over_before", "block", "bootstrap_ci", "ratio_of_medians", "spread", "verdict"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Spread:
    """Median, quartiles (``statistics.quantiles(method="inclusive")``) and range of some values."""

    median: float
    q1: float
    q3: float
    low: float
    high: float


def spread(values: Sequence[float]) -> Spread:
    """The ``Spread`` of at least one value (with one value every field is that value)."""
    if not values:
        raise ValueError("spread needs at least one value")
    if len(values) == 1:
        v = float(values[0])
        return Spread(median=v, q1=v, q3=v, low=v, high=v)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Spread(median=statistics.median(values), q1=q1, q3=q3, low=min(values), high=max(values))


def block(by_index: Mapping[int, float], indices: range) -> list[float]:
    """The values of the steps in ``indices``; every one must be present (a missing step means the run
    did not have the layout the benchmark planned, which would silently shift the blocks)."""
    missing = [i for i in indices if i not in by_index]
    if missing:
        raise ValueError(f"steps {missing[0]}..{missing[-1]} are missing ({len(missing)} of {len(indices)})")
    return [by_index[i] for i in indices]


def after_over_before(before: Sequence[float], after: Sequence[float]) -> float:
    """Median of ``after`` over median of ``before`` (step times, any one unit); > 1: slower after."""
    if not before or not after:
        raise ValueError("both blocks need at least one step")
    base = statistics.median(before)
    if base <= 0:
        raise ValueError(f"the median step before is {base}, not a time")
    return statistics.median(after) / base


def ratio_of_medians(treated: Sequence[float], control: Sequence[float]) -> float:
    """Median of the treated processes' ratios over the median of the control's: 1.0 = no difference."""
    return statistics.median(treated) / statistics.median(control)


def bootstrap_ci(treated: Sequence[float], control: Sequence[float], *, level: float = 0.95,
                 draws: int = 4000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``ratio_of_medians``: each draw resamples both groups with
    replacement (the processes are the independent units). Seeded, so a report can be reproduced from
    its numbers. With only a few processes per group the interval is coarse (it can only take values of
    ratios of the observed medians), which is honest: few processes cannot show a small effect."""
    return _percentile_interval(
        lambda rng: ratio_of_medians(rng.choices(treated, k=len(treated)), rng.choices(control, k=len(control))),
        level=level, draws=draws, seed=seed)


def bootstrap_median_ci(values: Sequence[float], *, level: float = 0.95, draws: int = 4000,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values`` (each value an independent unit, e.g.
    the ratio of one pair of blocks); seeded like ``bootstrap_ci``."""
    return _percentile_interval(lambda rng: statistics.median(rng.choices(values, k=len(values))),
                                level=level, draws=draws, seed=seed)


def _percentile_interval(draw: Callable[[random.Random], float], *, level: float, draws: int,
                         seed: int) -> tuple[float, float]:
    """The central ``level`` interval of ``draws`` values of ``draw(rng)``, one seeded generator for all."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = random.Random(seed)
    stats = sorted(draw(rng) for _ in range(draws))
    tail = (1 - level) / 2
    return stats[int(tail * (draws - 1))], stats[int(round((1 - tail) * (draws - 1)))]


def verdict(ci: tuple[float, float], tolerance: float) -> str:
    """``pass`` when the whole interval lies within 1 +- ``tolerance``, ``fail`` when the whole interval
    lies outside it (on one side), else ``inconclusive`` (the noise is wider than the claim)."""
    low, high = ci
    if 1 - tolerance <= low and high <= 1 + tolerance:
        return "pass"
    if low > 1 + tolerance or high < 1 - tolerance:
        return "fail"
    return "inconclusive"
