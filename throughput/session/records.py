"""Frozen records of what was measured. Nothing here is derived: analysis computes from these.

Units are in the field names: ``_s`` seconds, ``_bytes`` bytes, ``_flops`` floating-point operations.
Times are seconds on the run's clock (``perf_counter`` by default), relative to ``RunInfo.origin_s``
only where a field says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping


class Phase(str, Enum):
    """The standard phases of a training step. Users may add their own names (plain strings)."""

    DATA = "data"              # blocked waiting for the next batch
    H2D = "h2d"                # copying the batch to the device
    FORWARD = "forward"
    BACKWARD = "backward"
    OPTIMIZER = "optimizer"    # optimizer.step and zero_grad
    EVAL = "eval"              # forwards with grad disabled or the model in eval mode
    CHECKPOINT = "checkpoint"  # torch.save and friends
    OTHER = "other"            # the part of a step no phase covered (derived, never recorded)

    def __str__(self) -> str:
        return self.value


STANDARD_PHASES: tuple[str, ...] = tuple(p.value for p in Phase)


class StepRule(str, Enum):
    """How step boundaries were found."""

    MANUAL = "manual"          # the user called Profiler.step()
    OPTIMIZER = "optimizer"    # one step per optimizer.step() (the normal zero-code rule)
    BACKWARD = "backward"      # no torch.optim optimizer was seen: one step per backward() call


class RunEnd(str, Enum):
    """How the profiled run ended."""

    COMPLETED = "completed"
    EXCEPTION = "exception"
    SYSTEM_EXIT = "system_exit"
    INTERRUPTED = "interrupted"      # Ctrl-C
    TERMINATED = "terminated"        # SIGTERM
    MAX_STEPS = "max_steps"          # --max-steps reached
    RUNNING = "running"              # saved before the run ended (a snapshot)


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """One interval of one phase, for the timeline trace.

    ``start_s``/``end_s`` are host clock readings. ``device_s`` is the time between the phase's CUDA
    events on the stream (None on CPU or when unresolved). ``depth`` is the nesting depth (0 = outermost).
    """

    phase: str
    step: int
    start_s: float
    end_s: float
    depth: int = 0
    device_s: float | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    """One optimizer update (or one manual ``Profiler.step()``).

    ``phase_s`` holds exclusive host time per phase: time inside nested phases counts only for the
    innermost one, so ``sum(phase_s.values()) <= duration_s`` and the rest is ``other``.
    ``device_phase_s`` is the same on the device (CUDA events), None on CPU.
    ``device_busy_s`` is the device time covered by phases, None on CPU.
    """

    index: int
    start_s: float
    end_s: float
    phase_s: Mapping[str, float]
    micro_steps: int = 1
    samples: int | None = None
    tokens: int | None = None
    padding_tokens: int | None = None
    loss: float | None = None
    grad_norm: float | None = None
    device_phase_s: Mapping[str, float] | None = None
    device_busy_s: float | None = None
    peak_memory_bytes: int | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def other_s(self) -> float:
        """Wall time not covered by any phase (never negative)."""
        return max(0.0, self.duration_s - sum(self.phase_s.values()))


OTHER = "other"


def exclusive_times(duration_s: float, phase_s: Mapping[str, float]) -> dict[str, float]:
    """Exclusive host seconds per phase for one step, ``other`` included; they sum to the step's wall
    time (phases that overrun the wall time, which the recorder cannot produce, are scaled down).
    The one definition that both the analyses and the capture's running totals use."""
    times = {k: max(0.0, v) for k, v in phase_s.items()}
    covered = math.fsum(times.values())
    if covered > duration_s > 0:
        scale = duration_s / covered
        times = {k: v * scale for k, v in times.items()}
    times[OTHER] = max(0.0, duration_s - sum(phase_s.values()))
    return times


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something seen during capture that analysis may turn into a finding (hygiene checks).

    ``kind`` is a stable id such as ``"bn_small_batch"``; ``detail`` holds measured values only.
    """

    kind: str
    step: int
    message: str
    detail: Mapping[str, float | int | str | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetrySample:
    """One reading of one metric from a sampler (NVML, host). ``source`` names the device or process."""

    time_s: float
    source: str
    metric: str
    value: float


# Metrics whose value is a running total since the process started (host sampler, main process):
# differences between two samples are the measurement. Minor faults are a count; the others seconds.
COUNTER_METRICS: frozenset[str] = frozenset({"minor_faults_total", "user_cpu_total_s", "system_cpu_total_s"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """Facts about the run: where, what, how it ended."""

    run_id: str
    argv: tuple[str, ...] = ()
    device: str = "cpu"                 # "cpu" or "cuda"
    device_name: str = "cpu"            # e.g. "NVIDIA H200" or the CPU model
    torch_version: str = ""
    python_version: str = ""
    hostname: str = ""
    rank: int = 0
    world_size: int = 1
    origin_s: float = 0.0               # clock reading when capture started
    started_unix_s: float = 0.0
    step_rule: StepRule = StepRule.MANUAL
    warmup_steps: int = 1
    end: RunEnd = RunEnd.COMPLETED
    end_detail: str = ""                # e.g. the exception's one-line summary
    exit_code: int | None = None
    flops_per_step: float | None = None
    peak_flops: float | None = None     # the device's dense peak for the run's dtype, if known
    peak_flops_source: str = ""
    dtype: str = "fp32"
    notes: tuple[str, ...] = ()
    overrides: Mapping[str, str] = field(default_factory=dict)     # `--set KEY=VALUE` applied to the run
    environment: Mapping[str, str] = field(default_factory=dict)   # thread, device and allocator settings

    @property
    def partial(self) -> bool:
        """True when the run did not end on its own (early stop, crash, signal)."""
        return self.end not in (RunEnd.COMPLETED, RunEnd.SYSTEM_EXIT) or (
            self.end is RunEnd.SYSTEM_EXIT and self.exit_code not in (0, None)
        )
