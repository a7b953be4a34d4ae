"""``TrainConfig``: every knob of the training loop, frozen and validated at construction.

Values come from, in increasing priority: the defaults below, the recipe's ``config`` mapping, a tuned
plan (``--plan``), then ``--set key=value`` overrides. Every field is a knob of the vocabulary in
``throughput/knobs.py``, which types, validates and documents it; ``with_overrides`` parses strings by
the knob's type and fails with one line naming the key, so a typo never silently trains the wrong recipe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from throughput.knobs import KNOBS, KnobError, Value, canonical_key, not_applicable, split_assignment

SCHEDULES = KNOBS["schedule"].choices
AMP_MODES = KNOBS["amp"].choices
DEVICES = KNOBS["device"].choices


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    """The loop's settings, with its defaults. Each field is the knob of the same name
    (``throughput.knobs.KNOBS``): its help is the CLI help for ``--set`` (``field_docs()``)."""

    steps: int = 200
    micro_batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    warmup_steps: int = 20
    pct_start: float = 0.3
    schedule: str = "cosine"
    clip_grad_norm: float = 1.0
    amp: str = "auto"
    device: str = "auto"
    num_workers: int = 0
    pin_memory: bool = False
    shuffle: bool = True
    eval_every: int = 50
    eval_batches: int = 20
    ckpt_every_steps: int = 0
    ckpt_every_s: float = 0.0
    keep_last: int = 3
    seed: int = 0
    out_dir: str = "runs/train"
    packing: bool = False
    tf32: bool = False
    persistent_workers: bool = False
    prefetch_factor: int = 2
    activation_checkpointing: bool = False
    compile: bool = False
    log_every: int = 10
    stop_on_nonfinite: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):   # types, ranges and choices: the knob vocabulary's
            try:
                object.__setattr__(self, f.name, KNOBS[f.name].check(getattr(self, f.name)))
            except KnobError as e:
                raise ConfigError(str(e)) from None

    def with_overrides(self, overrides: Mapping[str, Any]) -> "TrainConfig":
        """A copy with ``overrides`` applied. Values may be typed (from JSON) or strings (from --set)."""
        known = {f.name for f in dataclasses.fields(self)}
        changes: dict[str, Value] = {}
        for key, value in overrides.items():
            name = canonical_key(key)
            if name not in known:
                hint = not_applicable(KNOBS[name], "recipe") + "; " if name in KNOBS else ""
                raise ConfigError(f"unknown config key {key!r}; {hint}known keys: {', '.join(sorted(known))}")
            try:
                changes[name] = KNOBS[name].check(value)
            except KnobError as e:
                raise ConfigError(str(e)) from None
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]  # validated per knob

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def parse_set_args(items: list[str]) -> dict[str, str]:
    """``["lr=3e-4", "amp=bf16"]`` -> ``{"lr": "3e-4", "amp": "bf16"}``; one-line error otherwise."""
    out: dict[str, str] = {}
    for item in items:
        try:
            key, value = split_assignment(item)
        except KnobError as e:
            raise ConfigError(str(e)) from None
        out[key] = value
    return out


def field_docs() -> dict[str, str]:
    """Field name -> its one-line doc (with the default), for help text and docs."""
    return {f.name: f"{KNOBS[f.name].help} (default: {f.default!r})" for f in dataclasses.fields(TrainConfig)}
