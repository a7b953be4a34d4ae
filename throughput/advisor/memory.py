"""Peak memory against micro-batch size: a straight-line fit and the largest batch under a budget.

Peak memory of a training step is, to first order, ``fixed + per_sample * batch``: parameters, gradients
and optimizer state do not depend on the batch, activations saved for backward grow with it. Two or three
probes at small sizes (which cannot run out of memory) are enough to fit the line; the predicted maximum
keeps a safety margin, and the chosen size is then validated by running it. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# keep 10% of the budget free: allocator fragmentation, spikes (throughput/thresholds.py)
from throughput.thresholds import MEMORY_SAFETY_MARGIN as DEFAULT_SAFETY_MARGIN


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryFit:
    """``peak_bytes(b) = fixed_bytes + per_sample_bytes * b``, fitted by least squares."""

    fixed_bytes: float
    per_sample_bytes: float
    points: tuple[tuple[int, int], ...]      # (batch size, measured peak bytes)
    max_residual_bytes: float                # largest |measured - fitted| over the points

    def predict_bytes(self, batch_size: int) -> float:
        """Predicted peak bytes at ``batch_size`` samples per micro-batch."""
        return self.fixed_bytes + self.per_sample_bytes * batch_size

    def max_batch(self, budget_bytes: float, safety_margin: float = DEFAULT_SAFETY_MARGIN) -> int | None:
        """Largest batch whose predicted peak is within ``budget_bytes * (1 - safety_margin)``.

        Returns None when memory does not grow with the batch (no limit from memory) and 0 when even the
        fixed part does not fit.
        """
        if not 0.0 <= safety_margin < 1.0:
            raise ValueError(f"safety_margin must be in [0, 1), got {safety_margin}")
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be > 0, got {budget_bytes}")
        usable = budget_bytes * (1.0 - safety_margin)
        if self.per_sample_bytes <= 0:
            return None if self.fixed_bytes <= usable else 0
        return max(0, math.floor((usable - self.fixed_bytes) / self.per_sample_bytes))


def fit_memory(points: Sequence[tuple[int, int]]) -> MemoryFit:
    """Least-squares line through (batch size, peak bytes) points; needs two distinct batch sizes.

    Raises ValueError with the fix when the points cannot define a line.
    """
    if len(points) < 2:
        raise ValueError(f"need peak memory at >= 2 batch sizes to fit, got {len(points)}")
    xs = [float(b) for b, _ in points]
    ys = [float(m) for _, m in points]
    if any(x <= 0 for x in xs) or any(y < 0 for y in ys):
        raise ValueError("batch sizes must be > 0 and peak bytes >= 0")
    n = len(points)
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("all probes used the same batch size; probe at >= 2 different sizes")
    slope = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    residual = max(abs(y - (intercept + slope * x)) for x, y in zip(xs, ys))
    return MemoryFit(fixed_bytes=intercept, per_sample_bytes=slope,
                     points=tuple((int(b), int(m)) for b, m in points), max_residual_bytes=residual)


def probe_sizes(target: int, smallest: int = 1) -> tuple[int, ...]:
    """Small batch sizes to probe for the fit: ``smallest``, then 2x and 4x it, capped by ``target``.

    Small on purpose: a probe must not run out of memory. Duplicates are removed.
    """
    if target < 1 or smallest < 1:
        raise ValueError(f"target and smallest must be >= 1, got {target}, {smallest}")
    sizes = sorted({min(target, smallest * k) for k in (1, 2, 4)})
    return tuple(sizes)
