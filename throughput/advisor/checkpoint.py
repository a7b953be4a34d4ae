"""Checkpoint cadence: the Young/Daly optimum interval and the expected time lost (torch-free).

Symbols (all in seconds), as in Daly's paper:
- ``delta``: time to write one checkpoint (measured on the real model and optimizer state),
- ``M``: mean time between failures of the whole job (MTBF),
- ``R``: time to restart after a failure (re-launch + load), 0 unless given,
- ``tau``: compute time between two checkpoints (the interval we choose).

Young (1974), "A first order approximation to the optimum checkpoint interval", CACM 17(9):
    tau = sqrt(2 * delta * M)
Daly (2006), "A higher order estimate of the optimum checkpoint interval for restart dumps",
Future Generation Computer Systems 22(3), 303-312 (the higher-order estimate):
    tau = sqrt(2 delta M) * [1 + 1/3 sqrt(delta / (2M)) + 1/9 (delta / (2M))] - delta   for delta < 2M
    tau = M                                                                              for delta >= 2M
and his complete model of the expected wall time for ``T_s`` seconds of useful work:
    T_w = M * exp(R / M) * (exp((tau + delta) / M) - 1) * T_s / tau
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

# Default failure rate, from published large-scale training data:
# Llama 3 (Dubey et al., 2024, "The Llama 3 Herd of Models", arXiv:2407.21783, section 3.3.4, table 5):
# 419 unexpected interruptions in a 54-day snapshot of pre-training on 16,384 H100 GPUs
# (466 interruptions in all, 47 of them planned). Assuming failures scale with the number of GPUs:
#   per-GPU rate = 419 / (54 days * 24 h * 16,384 GPUs) = 419 / 21,233,664 GPU-hours = 1.973e-5 per GPU-hour
# i.e. one interruption every 54 * 24 / 419 = 3.09 hours on 16,384 GPUs.
LLAMA3_UNEXPECTED_INTERRUPTIONS: Final = 419
LLAMA3_DAYS: Final = 54
LLAMA3_GPUS: Final = 16_384
FAILURES_PER_GPU_HOUR: Final[float] = LLAMA3_UNEXPECTED_INTERRUPTIONS / (LLAMA3_DAYS * 24 * LLAMA3_GPUS)
FAILURE_RATE_SOURCE: Final = ("Llama 3 paper (arXiv:2407.21783, sec. 3.3.4): 419 unexpected interruptions "
                              "in 54 days on 16,384 GPUs")


def mtbf_from_gpus(num_gpus: int, failures_per_gpu_hour: float = FAILURES_PER_GPU_HOUR) -> float:
    """Job MTBF in seconds for ``num_gpus`` GPUs, failures independent and rate proportional to GPUs.

    A single node is not immune: with 8 GPUs the default gives 1 / (8 * 1.973e-5) = 6,334 h (264 days).
    """
    if num_gpus < 1:
        raise ValueError(f"num_gpus must be >= 1, got {num_gpus}")
    if failures_per_gpu_hour <= 0:
        raise ValueError(f"failures_per_gpu_hour must be > 0, got {failures_per_gpu_hour}")
    return 3600.0 / (num_gpus * failures_per_gpu_hour)


def young_interval(delta_s: float, mtbf_s: float) -> float:
    """Young's first-order optimum: sqrt(2 * delta * M) seconds of compute between checkpoints."""
    _check(delta_s, mtbf_s)
    return math.sqrt(2.0 * delta_s * mtbf_s)


def daly_interval(delta_s: float, mtbf_s: float) -> float:
    """Daly's higher-order optimum: compute seconds between checkpoints; M when delta >= 2M."""
    _check(delta_s, mtbf_s)
    if delta_s >= 2.0 * mtbf_s:
        return mtbf_s
    x = delta_s / (2.0 * mtbf_s)
    return math.sqrt(2.0 * delta_s * mtbf_s) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - delta_s


def expected_wall_time(work_s: float, tau_s: float, delta_s: float, mtbf_s: float,
                       restart_s: float = 0.0) -> float:
    """Daly's complete model: expected wall seconds to finish ``work_s`` of useful compute when
    checkpointing every ``tau_s`` seconds of compute (failures Poisson with mean ``mtbf_s``)."""
    _check(delta_s, mtbf_s)
    if tau_s <= 0 or work_s < 0 or restart_s < 0:
        raise ValueError(f"need tau_s > 0, work_s >= 0, restart_s >= 0; got {tau_s}, {work_s}, {restart_s}")
    return mtbf_s * math.exp(restart_s / mtbf_s) * math.expm1((tau_s + delta_s) / mtbf_s) * work_s / tau_s


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointPlan:
    """The chosen cadence and what it costs. ``lost_fraction`` = 1 - useful / expected wall time."""

    delta_s: float
    mtbf_s: float
    mtbf_source: str
    restart_s: float
    young_s: float
    daly_s: float
    interval_s: float             # compute seconds between checkpoints, after the max-lost-work cap
    capped: bool                  # True when max_lost_work_s lowered the interval
    every_steps: int | None       # interval in optimizer steps (None without a step time)
    lost_fraction: float          # checkpoint writes + rework + restarts, share of wall time
    lost_s_per_day: float         # the same, in seconds per 24 h of wall time


def plan_checkpoints(*, delta_s: float, step_time_s: float | None = None, num_gpus: int = 1,
                     mtbf_s: float | None = None, restart_s: float = 0.0,
                     max_lost_work_s: float | None = None) -> CheckpointPlan:
    """Choose the checkpoint interval: Daly's optimum, capped at ``max_lost_work_s`` (the most compute a
    failure may throw away). ``mtbf_s`` defaults to the published per-GPU rate times ``num_gpus``."""
    if mtbf_s is None:
        mtbf_s, source = mtbf_from_gpus(num_gpus), f"{num_gpus} GPU(s) x {FAILURE_RATE_SOURCE}"
    else:
        source = "given"
    _check(delta_s, mtbf_s)
    if max_lost_work_s is not None and max_lost_work_s <= 0:
        raise ValueError(f"max_lost_work_s must be > 0, got {max_lost_work_s}")
    if step_time_s is not None and step_time_s <= 0:
        raise ValueError(f"step_time_s must be > 0, got {step_time_s}")
    daly = daly_interval(delta_s, mtbf_s)
    interval = daly if max_lost_work_s is None else min(daly, max_lost_work_s)
    every = None
    if step_time_s is not None:
        every = max(1, int(interval // step_time_s))
        interval = every * step_time_s       # what the plan will really do
    wall = expected_wall_time(1.0, interval, delta_s, mtbf_s, restart_s)
    lost = 1.0 - 1.0 / wall
    return CheckpointPlan(delta_s=delta_s, mtbf_s=mtbf_s, mtbf_source=source, restart_s=restart_s,
                          young_s=young_interval(delta_s, mtbf_s), daly_s=daly, interval_s=interval,
                          capped=max_lost_work_s is not None and max_lost_work_s < daly, every_steps=every,
                          lost_fraction=lost, lost_s_per_day=lost * 86_400.0)


def _check(delta_s: float, mtbf_s: float) -> None:
    if not delta_s > 0:
        raise ValueError(f"checkpoint write time delta_s must be > 0 seconds, got {delta_s}")
    if not mtbf_s > 0:
        raise ValueError(f"mean time between failures mtbf_s must be > 0 seconds, got {mtbf_s}")
