"""The knobs the advisor may turn, and the settings of its search (torch-free).

The same ``SearchSpace`` drives the advisor's coordinate descent and the benchmark's exhaustive grid,
so "the best configuration of the grid over the same knobs" means exactly that.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from throughput.finding import Setting, int_setting
from throughput.thresholds import CONFIRM_BAND, DATA_WAIT_WORTH_WORKERS, LOSS_TOLERANCE, MEMORY_SAFETY_MARGIN, MIN_GAIN


def micro_batch_candidates(target_global_batch: int, largest: int | None = None) -> tuple[int, ...]:
    """Micro-batch sizes that divide the global batch: powers of two and the global batch itself.

    ``largest`` caps the sizes (e.g. a dataset size). Ascending.
    """
    if target_global_batch < 1:
        raise ValueError(f"target global batch must be >= 1 sample, got {target_global_batch}")
    cap = min(target_global_batch, largest) if largest is not None else target_global_batch
    sizes = {1 << k for k in range(cap.bit_length()) if target_global_batch % (1 << k) == 0 and 1 << k <= cap}
    if target_global_batch <= cap:
        sizes.add(target_global_batch)
    return tuple(sorted(sizes))


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchSpace:
    """Values each knob may take. ``micro_batch_size`` values must divide ``target_global_batch``;
    ``grad_accum`` follows from them, unless ``grad_accum`` is fixed: a target that cannot change its
    accumulation (a script accumulates in its own code) runs every micro-batch with it, so the sizes need
    not divide anything and each configuration records the accumulation that actually ran. The first
    value of ``amp`` is the reference precision (fp32)."""

    target_global_batch: int
    micro_batch_size: tuple[int, ...]
    num_workers: tuple[int, ...] = (0,)
    prefetch_factor: tuple[int, ...] = (2,)
    amp: tuple[str, ...] = ("fp32",)
    activation_checkpointing: tuple[bool, ...] = (False,)
    fixed: Mapping[str, Setting] = field(default_factory=dict)   # set, never searched (pin_memory, tf32)
    # On/off candidates tried last, each kept only for a measured gain (e.g. "compile", "channels_last",
    # "fused_optimizer"); the target or the build function must understand the key. Not in the grid.
    extras: tuple[str, ...] = ()
    # The target's own accumulation, which no configuration changes (a script's, as its profile observed).
    grad_accum: int | None = None

    def __post_init__(self) -> None:
        if not self.micro_batch_size:
            raise ValueError("micro_batch_size needs at least one candidate")
        if self.grad_accum is not None and self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1 when fixed, got {self.grad_accum}")
        bad = [m for m in self.micro_batch_size if m < 1 or (self.grad_accum is None and self.target_global_batch % m)]
        if bad:
            raise ValueError(f"micro-batch sizes {bad} do not divide the global batch {self.target_global_batch}")
        if tuple(sorted(self.micro_batch_size)) != self.micro_batch_size:
            raise ValueError("micro_batch_size candidates must be ascending")
        if self.amp[0] != "fp32":
            raise ValueError("the first amp value must be the fp32 reference")

    def config(self, **knobs: Setting) -> dict[str, Setting]:
        """A full configuration: the fixed settings, the knobs, and grad_accum (the fixed one, or the one
        that makes the global batch from the micro-batch)."""
        cfg: dict[str, Setting] = {**self.fixed, **knobs}
        micro = int_setting(cfg, "micro_batch_size")
        cfg["grad_accum"] = self.grad_accum or self.target_global_batch // micro
        if int(cfg.get("num_workers", 0) or 0) > 0:
            cfg.setdefault("persistent_workers", True)
        return cfg

    def grid(self) -> Iterator[dict[str, Setting]]:
        """Every combination (prefetch_factor only varies with workers > 0)."""
        for m, w, a, ac in itertools.product(self.micro_batch_size, self.num_workers, self.amp,
                                             self.activation_checkpointing):
            for pf in (self.prefetch_factor if w > 0 else self.prefetch_factor[:1]):
                yield self.config(micro_batch_size=m, num_workers=w, prefetch_factor=pf, amp=a,
                                  activation_checkpointing=ac)

    @property
    def grid_size(self) -> int:
        return sum(1 for _ in self.grid())


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchSettings:
    """How the advisor searches. Gains are relative (0.03 = 3%); defaults from throughput/thresholds.py."""

    probe_steps: int = 3
    memory_budget_bytes: int | None = None     # peak memory a configuration may add (see trials.py)
    safety_margin: float = MEMORY_SAFETY_MARGIN
    time_budget_s: float | None = None         # stop trying new knobs after this much probing
    min_gain: float = MIN_GAIN                 # a change must beat the current best by this much
    confirm_band: float = CONFIRM_BAND         # closer calls than this are measured again before deciding
    data_wait_done: float = DATA_WAIT_WORTH_WORKERS   # data wait share below which workers are not swept
    loss_tolerance: float = LOSS_TOLERANCE     # relative loss disagreement a precision may show
    max_passes: int = 2

    def __post_init__(self) -> None:
        if self.probe_steps < 1:
            raise ValueError(f"probe_steps must be >= 1, got {self.probe_steps}")
        if self.memory_budget_bytes is not None and self.memory_budget_bytes <= 0:
            raise ValueError(f"memory budget must be > 0 bytes, got {self.memory_budget_bytes}")
        if not 0 <= self.safety_margin < 1:
            raise ValueError(f"safety_margin must be in [0, 1), got {self.safety_margin}")
