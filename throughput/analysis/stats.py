"""Small statistics used by the analyses: exact quantiles of a few thousand values, and distributions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from throughput.session.exact import exact_std


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method). ``values`` must be non-empty, 0 <= q <= 1."""
    if not values:
        raise ValueError("quantile of an empty sequence")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return quantile(values, 0.5)


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of an empty sequence")
    return math.fsum(values) / len(values)


@dataclass(frozen=True, slots=True, kw_only=True)
class Distribution:
    """Summary of a set of durations in seconds."""

    count: int
    mean_s: float
    median_s: float
    p5_s: float
    p95_s: float
    min_s: float
    max_s: float
    std_s: float

    @property
    def spread(self) -> float:
        """(p95 - p5) / median: a scale-free width; 0 when the median is 0."""
        return (self.p95_s - self.p5_s) / self.median_s if self.median_s > 0 else 0.0


def distribution(values: Sequence[float]) -> Distribution:
    """Describe durations. Raises ValueError on an empty sequence. The standard deviation (population)
    comes from exact sums of the values and their squares, rounded once: the same number a bounded
    capture's running totals give (``analysis.measured``)."""
    if not values:
        raise ValueError("distribution of an empty sequence")
    return Distribution(
        count=len(values), mean_s=mean(values), median_s=median(values), p5_s=quantile(values, 0.05),
        p95_s=quantile(values, 0.95), min_s=min(values), max_s=max(values), std_s=exact_std(values),
    )
