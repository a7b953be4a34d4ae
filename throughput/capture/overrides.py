"""Recipe overrides applied by the zero-code instrumentation: ``throughput profile --set k=v``.

An ``Overrides`` record says what to change; ``hooks.Instrumentation`` applies it while the script
runs (DataLoader keyword arguments, autocast around the outermost training forward, TF32 matmuls).
The keys, their types and values are the knob vocabulary's (``throughput/knobs.py``): parsing is
strict, and an unknown key or a bad value is a one-line ``ValueError`` naming the valid choices (or,
for a knob a script cannot take from outside, how to apply it instead).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping

from throughput.knobs import (KNOBS, KnobError, Value, canonical_key, not_applicable, script_knobs,
                              split_assignment)

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
    amp: str | None = None                   # autocast around the training forward: bf16|fp16 (fp32: autocast off there)
    tf32: bool | None = None                 # allow TF32 matmuls and convolutions on CUDA

    def __post_init__(self) -> None:
        for f in fields(self):   # each field is a knob (batch_size: micro_batch_size) and validated as one
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, KNOBS[canonical_key(f.name)].check(value, for_script=True))

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
    """The knobs ``throughput profile --set`` applies (throughput/knobs.py; ``batch_size`` is accepted
    for ``micro_batch_size``)."""
    return script_knobs()


def parse_set(items: Iterable[str]) -> dict[str, Value]:
    """``["num_workers=4", "amp=bf16"]`` -> validated knob values (throughput/knobs.py), for a script.
    Raises ValueError (``KnobError``) with a one-line message naming the key and the fix."""
    values: dict[str, Value] = {}
    for item in items:
        key, raw = split_assignment(item)
        if key not in KNOBS:
            raise KnobError(f"unknown override {key!r}; valid keys: {', '.join(valid_keys())}")
        k = KNOBS[key]
        if not k.script:
            raise KnobError(not_applicable(k, "script"))
        values[key] = k.parse(raw, for_script=True)
    return values


def parse_overrides(items: Iterable[str]) -> Overrides:
    """``["num_workers=4", "amp=bf16"]`` -> ``Overrides``. Raises ValueError with a one-line message.
    Knobs applied through the environment at start (``malloc_threshold_bytes``) are not part of
    ``Overrides``: ``launch_env`` turns them into variables that ``throughput profile`` sets."""
    return overrides_from(parse_set(items))


def overrides_from(values: Mapping[str, Value]) -> Overrides:
    """An ``Overrides`` from validated knob values (the in-process ones; env knobs are left out)."""
    fields_by_knob = {"micro_batch_size": "batch_size"}
    kwargs = {fields_by_knob.get(k, k): v for k, v in values.items() if not KNOBS[k].env}
    return Overrides(**kwargs)  # type: ignore[arg-type]  # each value was validated by its knob


def launch_env(values: Mapping[str, Value]) -> dict[str, str]:
    """Environment variables for the knobs that take effect only at process start (glibc reads its
    malloc tunables once). Empty when none is set; 0 leaves glibc's default."""
    n = values.get("malloc_threshold_bytes")
    if not n:
        return {}
    return {"MALLOC_MMAP_THRESHOLD_": str(n), "MALLOC_TRIM_THRESHOLD_": str(n)}


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
