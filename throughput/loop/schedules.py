"""Learning-rate schedules as multipliers of the peak lr, usable with ``torch.optim.lr_scheduler.LambdaLR``.

Each schedule is a small frozen object of plain numbers, so ``LambdaLR.state_dict()`` holds only plain
types and a checkpoint loads with ``weights_only=True``. ``factor(step)`` is the multiplier applied for
the update with 0-based index ``step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)  # no slots: LambdaLR.state_dict() saves the lambda's __dict__
class Schedule:
    """``kind`` is cosine | onecycle | constant. ``total_steps`` optimizer updates in the run.

    cosine:   linear warm-up from lr/warmup to lr over ``warmup_steps``, then cosine down to
              ``min_ratio * lr`` at the last step.
    onecycle: linear rise from ``min_ratio * lr`` to lr over ``pct_start * total_steps``, then cosine
              down to ``min_ratio * lr`` (the one-cycle policy with a cosine annealing phase).
    constant: linear warm-up, then lr.
    """

    kind: str
    total_steps: int
    warmup_steps: int = 0
    min_ratio: float = 0.1
    pct_start: float = 0.3

    def __post_init__(self) -> None:
        if self.kind not in ("cosine", "onecycle", "constant"):
            raise ValueError(f"schedule must be cosine | onecycle | constant, got {self.kind!r}")
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {self.total_steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")

    def factor(self, step: int) -> float:
        if self.kind == "onecycle":
            return self._onecycle(step)
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        decay_steps = max(1, self.total_steps - 1 - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        return self._cosine_between(1.0, self.min_ratio, progress)

    def __call__(self, step: int) -> float:
        return self.factor(step)

    def _onecycle(self, step: int) -> float:
        rise = max(1, round(self.pct_start * self.total_steps))
        if step < rise:
            return self.min_ratio + (1.0 - self.min_ratio) * (step + 1) / rise
        progress = min(1.0, (step - rise) / max(1, self.total_steps - 1 - rise))
        return self._cosine_between(1.0, self.min_ratio, progress)

    @staticmethod
    def _cosine_between(start: float, end: float, progress: float) -> float:
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_lambda_lr(optimizer: object, schedule: Schedule) -> object:
    """A ``LambdaLR`` driving ``optimizer`` with ``schedule`` (torch imported here, not at module load)."""
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lr_lambda=schedule)  # type: ignore[arg-type]  # torch's stubs want a function or a list of them
