"""Throughput figures from step records: samples/s, tokens/s, padding, device busy share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from throughput.session.records import StepRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class Rates:
    """Per-process rates over the measured steps; None where the batches did not tell."""

    samples_per_s: float | None
    tokens_per_s: float | None
    padding_fraction: float | None      # padding tokens / tokens, 0..1
    device_busy_share: float | None     # device-busy time / wall time, 0..1 (CUDA only)
    gpu_idle_s_per_step: float | None   # mean (wall - device busy) per step (CUDA only)


def _total(steps: Sequence[StepRecord], field: str) -> float | None:
    values = [getattr(s, field) for s in steps]
    if not values or any(v is None for v in values):
        return None
    return float(math.fsum(values))


def rates(steps: Sequence[StepRecord]) -> Rates:
    wall = math.fsum(s.duration_s for s in steps)
    samples, tokens = _total(steps, "samples"), _total(steps, "tokens")
    padding = _total(steps, "padding_tokens")
    busy = _total(steps, "device_busy_s")
    return Rates(
        samples_per_s=samples / wall if samples is not None and wall > 0 else None,
        tokens_per_s=tokens / wall if tokens is not None and wall > 0 else None,
        padding_fraction=padding / tokens if padding is not None and tokens else None,
        device_busy_share=min(1.0, busy / wall) if busy is not None and wall > 0 else None,
        gpu_idle_s_per_step=max(0.0, wall - busy) / len(steps) if busy is not None and steps else None,
    )
