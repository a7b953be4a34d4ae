"""Model FLOPs utilization: achieved FLOP/s over the device's peak dense FLOP/s (0..1) or None.

MFU = flops_per_step * steps / wall_s / peak_flops_per_s. It is None, with the reason, whenever it
would mislead: FLOPs or peak unknown, no measured time, or a value above 100% (the peak is too low
for this device/dtype or the FLOPs were overcounted; a utilization cannot exceed 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from throughput.hardware import peak_flops
from throughput.session.records import RunInfo, StepRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class Mfu:
    """``value`` is a fraction (0..1], None when not computable; ``reason`` says why it is None."""

    value: float | None
    reason: str
    flops_per_step: float | None
    achieved_flops_per_s: float | None
    peak_flops_per_s: float | None
    peak_source: str


def mfu(flops_per_step: float | None, steps: int, wall_s: float, peak_flops_per_s: float | None,
        peak_source: str = "") -> Mfu:
    """MFU over ``steps`` steps that took ``wall_s`` seconds in total (pure arithmetic, no lookup)."""
    achieved = flops_per_step * steps / wall_s if flops_per_step is not None and steps > 0 and wall_s > 0 else None

    def none(reason: str) -> Mfu:
        return Mfu(value=None, reason=reason, flops_per_step=flops_per_step, achieved_flops_per_s=achieved,
                   peak_flops_per_s=peak_flops_per_s, peak_source=peak_source)

    if flops_per_step is None or not math.isfinite(flops_per_step) or flops_per_step <= 0:
        return none("FLOPs per step unknown (count them with throughput.telemetry.flops or pass flops_per_step)")
    if achieved is None:
        return none("no measured steps")
    if peak_flops_per_s is None or peak_flops_per_s <= 0:
        return none("device peak FLOP/s unknown (device or dtype not in throughput.hardware.PEAK_FLOPS)")
    value = achieved / peak_flops_per_s
    if value > 1.0:
        return none(f"computed {value:.0%} > 100%: peak too low / FLOPs overcounted")
    return Mfu(value=value, reason="", flops_per_step=flops_per_step, achieved_flops_per_s=achieved,
               peak_flops_per_s=peak_flops_per_s, peak_source=peak_source)


def run_mfu(info: RunInfo, measured: Sequence[StepRecord]) -> Mfu:
    """MFU of a run's measured steps (see ``run_mfu_of``)."""
    return run_mfu_of(info, len(measured), math.fsum(s.duration_s for s in measured))


def run_mfu_of(info: RunInfo, steps: int, wall_s: float) -> Mfu:
    """MFU of ``steps`` measured steps lasting ``wall_s`` in all. The peak is the one recorded at capture
    (e.g. measured on CPU), else the table entry for ``info.device_name`` and ``info.dtype``."""
    peak, source = info.peak_flops, info.peak_flops_source
    if peak is None and info.device != "cpu":
        entry = peak_flops(info.device_name, info.dtype)
        if entry is not None:
            peak, source = entry.flops_per_s, entry.source
    return mfu(info.flops_per_step, steps, wall_s, peak, source)
