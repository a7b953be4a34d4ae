"""Resuming with another configuration: refused where it breaks the exact continuation, explicit elsewhere.

A checkpoint stores the configuration it was trained with. On ``--resume`` each changed key is judged by
its knob's ``resume`` class (throughput/knobs.py):

- ``refused``: the batch shape (micro_batch_size, grad_accum), the seed, the data order (shuffle,
  packing; num_workers for an iterable dataset, whose workers each read the stream). The saved data
  position counts micro-batches of the saved shape and order, so it would point at other samples:
  the only way out is a new run folder (``--out``).
- ``allowed``: changes the rest of the run but not what was done (the learning-rate schedule from this
  point, AdamW's hyper-parameters, clipping, precision): applied only with ``--allow-config-change``.
- ``free``: no effect on the result (evaluation, logging, checkpoint cadence, loader speed, steps).

Pure: the loop applies what this module decides (``ResumePlan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from throughput.knobs import KNOBS, show


class ResumeConfigError(ValueError):
    """Resuming with this configuration is refused; the message names the keys and the way out."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumePlan:
    """The keys that differ from the checkpoint's configuration, by class: key -> (saved, now)."""

    refused: Mapping[str, tuple[Any, Any]]
    allowed: Mapping[str, tuple[Any, Any]]
    free: Mapping[str, tuple[Any, Any]]

    @property
    def changed(self) -> dict[str, tuple[Any, Any]]:
        return {**self.refused, **self.allowed, **self.free}


def resume_plan(saved: Mapping[str, Any], now: Mapping[str, Any], *, iterable_data: bool) -> ResumePlan:
    """Classify the keys whose value differs between ``saved`` and ``now`` (``out_dir`` is never compared;
    keys the checkpoint predates are left alone)."""
    refused: dict[str, tuple[Any, Any]] = {}
    allowed: dict[str, tuple[Any, Any]] = {}
    free: dict[str, tuple[Any, Any]] = {}
    for key, value in now.items():
        if key == "out_dir" or key not in saved or saved[key] == value or key not in KNOBS:
            continue
        kind = KNOBS[key].resume
        if key == "num_workers" and iterable_data:
            kind = "refused"
        {"refused": refused, "allowed": allowed, "free": free}[kind][key] = (saved[key], value)
    return ResumePlan(refused=refused, allowed=allowed, free=free)


def check_resume(plan: ResumePlan, *, step: int, allow_change: bool, out_dir: str) -> None:
    """Raise ``ResumeConfigError`` (one line) for refused keys, and for allowed ones without the flag."""
    if plan.refused:
        raise ResumeConfigError(
            f"cannot resume {out_dir} at step {step} with {_diff(plan.refused)}: that changes the batch shape, "
            "the seed or the data order, so the saved data position would point at other samples; resume "
            "with the saved values, or start a new run with another --out")
    if plan.allowed and not allow_change:
        raise ResumeConfigError(
            f"resuming {out_dir} at step {step} with {_diff(plan.allowed)} changes the rest of the run; pass "
            "--allow-config-change to apply it from this step (the learning-rate schedule continues from "
            "here), or start a new run with another --out")


def _diff(changes: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {show(a)} -> {show(b)}" for k, (a, b) in changes.items())
