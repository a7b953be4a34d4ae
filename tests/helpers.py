"""Builders for hand-made sessions, so analysis tests state their arithmetic in the test."""

from __future__ import annotations

from typing import Mapping, Sequence

from throughput.session.records import RunInfo, StepRecord
from throughput.session.session import Session


def make_steps(phase_s: Sequence[Mapping[str, float]], other_s: float = 0.0, samples: int | None = None,
               tokens: int | None = None) -> tuple[StepRecord, ...]:
    """Back-to-back steps starting at t=0, each lasting sum(phases) + other_s."""
    steps, t = [], 0.0
    for i, phases in enumerate(phase_s):
        duration = sum(phases.values()) + other_s
        steps.append(StepRecord(index=i, start_s=t, end_s=t + duration, phase_s=dict(phases),
                                samples=samples, tokens=tokens))
        t += duration
    return tuple(steps)


def make_session(n_steps: int = 4, warmup_steps: int = 0, other_s: float = 0.0, samples: int | None = None,
                 tokens: int | None = None, device: str = "cpu", **phase_s: float) -> Session:
    steps = make_steps([phase_s] * n_steps, other_s=other_s, samples=samples, tokens=tokens)
    return Session(info=RunInfo(run_id="test", warmup_steps=warmup_steps, device=device), steps=steps)
