"""Recipe overrides applied by the zero-code instrumentation: ``throughput profile --set k=v``.

An ``Overrides`` record says what to change; ``hooks.Instrumentation`` applies it while the script
runs (DataLoader keyword arguments, autocast around the outermost training forward, TF32 matmuls).
Parsing is strict: an unknown key or a bad value is a one-line ``ValueError`` naming the valid choices.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping

AMP_DTYPES: tuple[str, ...] = ("bf16", "fp16", "off")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

#: DataLoader keyword arguments an override may set (the rest are applied elsewhere).
LOADER_KEYS: tuple[str, ...] = ("num_workers", "pin_memory", "persistent_workers", "prefetch_factor",
                                "batch_size")


@dataclass(frozen=True, slots=True, kw_only=True)
class Overrides:
    """Changes to the training recipe; ``None`` leaves the script's own choice in place."""

    num_workers: int | None = None           # DataLoader worker processes (>= 0)
    pin_memory: bool | None = None           # DataLoader pinned host memory
    persistent_workers: bool | None = None   # keep workers between epochs (needs num_workers > 0)
    prefetch_factor: int | None = None       # batches prefetched per worker (needs num_workers > 0)
    batch_size: int | None = None            # DataLoader batch size (loaders built with batch_size)
    amp: str | None = None                   # autocast dtype around the training forward: bf16|fp16|off
    tf32: bool | None = None                 # allow TF32 matmuls and convolutions on CUDA

    def __post_init__(self) -> None:
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        for name in ("prefetch_factor", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {', '.join(AMP_DTYPES)}, got {self.amp!r}")

    @property
    def empty(self) -> bool:
        return not self.as_dict()

    def as_dict(self) -> dict[str, int | bool | str]:
        """The overrides that are set, in declaration order."""
        out: dict[str, int | bool | str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value
        return out

    def describe(self) -> str:
        return ", ".join(f"{k}={_show(v)}" for k, v in self.as_dict().items()) or "none"

    def loader_changes(self) -> dict[str, int | bool]:
        """The DataLoader keyword arguments to set."""
        return {k: v for k, v in self.as_dict().items() if k in LOADER_KEYS and not isinstance(v, str)}


def valid_keys() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Overrides))


def parse_overrides(items: Iterable[str]) -> Overrides:
    """``["num_workers=4", "amp=bf16"]`` -> ``Overrides``. Raises ValueError with a one-line message."""
    values: dict[str, Any] = {}
    keys = valid_keys()
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip().replace("-", "_"), raw.strip()
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r} (keys: {', '.join(keys)})")
        if key not in keys:
            raise ValueError(f"unknown override {key!r}; valid keys: {', '.join(keys)}")
        values[key] = _convert(key, raw)
    return Overrides(**values)


def _convert(key: str, raw: str) -> int | bool | str:
    if key in ("pin_memory", "persistent_workers", "tf32"):
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{key} expects true or false, got {raw!r}")
    if key == "amp":
        low = raw.lower()
        aliases = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "none": "off", "false": "off"}
        return aliases.get(low, low)
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{key} expects an integer, got {raw!r}") from None


def apply_loader_overrides(kwargs: Mapping[str, Any], overrides: Overrides) -> tuple[dict[str, Any], tuple[str, ...]]:
    """DataLoader keyword arguments with the overrides applied, and the keys that were applied.

    Keys that the loader cannot take are skipped rather than made to fail: ``batch_size`` when the
    loader has a ``batch_sampler`` or was built with ``batch_size=None``; ``prefetch_factor`` and
    ``persistent_workers`` when the loader ends up with no worker processes.
    """
    out = dict(kwargs)
    applied: list[str] = []
    for key, value in overrides.loader_changes().items():
        if key == "batch_size" and (out.get("batch_sampler") is not None or
                                    ("batch_size" in out and out["batch_size"] is None)):
            continue
        if key in ("prefetch_factor", "persistent_workers"):
            workers = overrides.num_workers if overrides.num_workers is not None else out.get("num_workers", 0)
            if not workers:
                continue
        out[key] = value
        applied.append(key)
    if not out.get("num_workers") and "prefetch_factor" in out and "prefetch_factor" not in applied:
        out.pop("prefetch_factor")  # a script's own prefetch_factor is invalid once workers are 0
        applied.append("prefetch_factor(dropped)")
    if not out.get("num_workers") and out.get("persistent_workers") and "num_workers" in applied:
        out["persistent_workers"] = False
    return out, tuple(applied)


def _show(value: int | bool | str) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
