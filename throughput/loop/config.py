"""``TrainConfig``: every knob of the training loop, frozen and validated at construction.

Values come from, in increasing priority: the defaults below, the recipe's ``config`` mapping, a tuned
plan (``--plan``), then ``--set key=value`` overrides. ``with_overrides`` parses strings by the field's
type and fails with one line naming the key, so a typo never silently trains the wrong recipe.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

SCHEDULES = ("cosine", "onecycle", "constant")
AMP_MODES = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda")


def _doc(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text})


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    """The loop's settings. Field docs (``field_docs()``) are the CLI help for ``--set``."""

    steps: int = _doc("optimizer updates to run in total (a resumed run continues up to this)", 200)
    micro_batch_size: int = _doc("samples per forward/backward (per rank)", 8)
    grad_accum: int = _doc("micro-batches per optimizer update", 1)
    lr: float = _doc("peak learning rate", 1e-3)
    min_lr_ratio: float = _doc("final learning rate as a fraction of lr (cosine, onecycle)", 0.1)
    weight_decay: float = _doc("decoupled AdamW weight decay (never applied to norms, biases, embeddings)", 0.1)
    beta1: float = _doc("AdamW beta1", 0.9)
    beta2: float = _doc("AdamW beta2", 0.95)
    eps: float = _doc("AdamW epsilon", 1e-8)
    warmup_steps: int = _doc("linear warm-up steps (cosine, constant); onecycle uses pct_start", 20)
    pct_start: float = _doc("onecycle: fraction of steps spent rising to lr", 0.3)
    schedule: str = _doc("learning-rate schedule: cosine | onecycle | constant", "cosine")
    clip_grad_norm: float = _doc("clip the global gradient norm to this (0 disables clipping)", 1.0)
    amp: str = _doc("autocast: auto (bf16 on CUDA if supported, else fp32) | bf16 | fp16 | fp32", "auto")
    device: str = _doc("auto | cpu | cuda", "auto")
    num_workers: int = _doc("DataLoader worker processes", 0)
    pin_memory: bool = _doc("pinned host memory for batches (CUDA only)", False)
    shuffle: bool = _doc("shuffle the training set each epoch (seeded by seed and epoch)", True)
    eval_every: int = _doc("evaluate every N steps (0: only at the end)", 50)
    eval_batches: int = _doc("validation batches per evaluation (0: the whole set)", 20)
    ckpt_every_steps: int = _doc("checkpoint every N steps (0: off)", 0)
    ckpt_every_s: float = _doc("checkpoint every S seconds of training (0: off)", 0.0)
    keep_last: int = _doc("checkpoints kept on disk (older ones are deleted)", 3)
    seed: int = _doc("seed for model init, data order and every RNG", 0)
    out_dir: str = _doc("folder for checkpoints, metrics.jsonl, session.json, diagnosis.json", "runs/train")
    packing: bool = _doc("ask the recipe for packed rows (the recipe's build_datasets reads it)", False)
    log_every: int = _doc("plain-text progress line every N steps when not on a terminal", 10)
    stop_on_nonfinite: bool = _doc("stop (and checkpoint) when the training loss is NaN or infinite", True)

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("steps", "micro_batch_size", "grad_accum", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "num_workers", "eval_every", "eval_batches", "ckpt_every_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "weight_decay", "clip_grad_norm", "ckpt_every_s", "eps"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("min_lr_ratio", "beta1", "beta2"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.pct_start < 1.0:
            raise ConfigError(f"pct_start must be in (0, 1), got {self.pct_start}")
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("amp", self.amp, AMP_MODES)
        _check_choice("device", self.device, DEVICES)
        if not self.out_dir:
            raise ConfigError("out_dir must be a non-empty path")

    def with_overrides(self, overrides: Mapping[str, Any]) -> "TrainConfig":
        """A copy with ``overrides`` applied. Values may be typed (from JSON) or strings (from --set)."""
        known = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in known:
                raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(sorted(known))}")
            changes[key] = _coerce(key, value, _field_type(key))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def parse_set_args(items: list[str]) -> dict[str, str]:
    """``["lr=3e-4", "amp=bf16"]`` -> ``{"lr": "3e-4", "amp": "bf16"}``; one-line error otherwise."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def field_docs() -> dict[str, str]:
    """Field name -> its one-line doc (with the default), for help text and docs."""
    return {f.name: f"{f.metadata.get('doc', '')} (default: {f.default!r})" for f in dataclasses.fields(TrainConfig)}


def _field_type(name: str) -> type:
    hints = typing.get_type_hints(TrainConfig)
    hint = hints[name]
    if isinstance(hint, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _check_types(cfg: TrainConfig) -> None:
    for f in dataclasses.fields(cfg):
        want, value = _field_type(f.name), getattr(cfg, f.name)
        ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(cfg, f.name, float(value))
            ok = True
        if not ok:
            raise ConfigError(f"{f.name} must be {want.__name__}, got {type(value).__name__} {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {' | '.join(choices)}, got {value!r}")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(key: str, value: Any, want: type) -> Any:
    if not isinstance(value, str) or want is str:
        return value  # typed values are checked by __post_init__
    text = value.strip()
    try:
        if want is bool:
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise ValueError
        if want is int:
            return int(text)
        if want is float:
            return float(text)
    except ValueError:
        raise ConfigError(f"{key} must be {want.__name__}, got {value!r}") from None
    return value
