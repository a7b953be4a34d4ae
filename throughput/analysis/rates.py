"""Throughput figures from step records: samples/s, tokens/s, padding, device busy share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from throughput.analysis.measured import Measured, measure_steps
from throughput.session.records import StepRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class Rates:
    """Per-process rates over the measured steps; None where the batches did not tell."""

    samples_per_s: float | None
    tokens_per_s: float | None
    padding_fraction: float | None      # padding tokens / tokens, 0..1
    device_busy_share: float | None     # device-busy time / wall time, 0..1 (CUDA only)
    gpu_idle_s_per_step: float | None   # mean (wall - device busy) per step (CUDA only)


def rates(steps: Sequence[StepRecord]) -> Rates:
    return rates_of(measure_steps(steps))


def real_tokens(tokens: float, padding_tokens: float | None) -> float:
    """The tokens a model learns from: those counted less their padding, where the batches told it
    (an attention mask, ``--pad-id``). tokens/s counts these, so that a padded and a packed run compare
    by the text they train on (a padded row's pad positions are compute, not throughput)."""
    return tokens - padding_tokens if padding_tokens is not None else tokens


def rates_of(m: Measured | None) -> Rates:
    """Rates of measured steps, however they were kept (None where the batches did not tell)."""
    if m is None:
        return Rates(samples_per_s=None, tokens_per_s=None, padding_fraction=None, device_busy_share=None,
                     gpu_idle_s_per_step=None)
    wall = m.wall_s
    samples = float(m.samples) if m.samples is not None else None
    tokens = float(m.tokens) if m.tokens is not None else None
    padding = float(m.padding_tokens) if m.padding_tokens is not None else None
    busy = m.device_busy_s
    return Rates(
        samples_per_s=samples / wall if samples is not None and wall > 0 else None,
        tokens_per_s=real_tokens(tokens, padding) / wall if tokens is not None and wall > 0 else None,
        padding_fraction=padding / tokens if padding is not None and tokens else None,
        device_busy_share=min(1.0, busy / wall) if busy is not None and wall > 0 else None,
        gpu_idle_s_per_step=max(0.0, wall - busy) / m.count if busy is not None else None,
    )
