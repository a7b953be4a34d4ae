"""Per-step series for plots and traces: phase seconds, throughput and loss for each step."""

from __future__ import annotations

from dataclasses import dataclass

from throughput.analysis.breakdown import phase_order, phase_times
from throughput.session.session import Session


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSeries:
    """Aligned per-step lists (index i is step ``steps[i]``). Rates are None where not readable."""

    steps: tuple[int, ...]
    end_s: tuple[float, ...]                       # seconds since the first step started
    phases: tuple[str, ...]
    phase_s: dict[str, tuple[float, ...]]          # phase -> exclusive seconds per step
    samples_per_s: tuple[float | None, ...]
    tokens_per_s: tuple[float | None, ...]
    loss: tuple[float | None, ...]
    warmup_steps: int


def step_series(session: Session) -> StepSeries:
    steps = session.steps
    per_step = [phase_times(s) for s in steps]
    names = phase_order(set().union(*per_step)) if per_step else []
    t0 = steps[0].start_s if steps else 0.0

    def rate(count: int | None, duration_s: float) -> float | None:
        return count / duration_s if count is not None and duration_s > 0 else None

    return StepSeries(
        steps=tuple(s.index for s in steps),
        end_s=tuple(s.end_s - t0 for s in steps),
        phases=tuple(names),
        phase_s={n: tuple(t.get(n, 0.0) for t in per_step) for n in names},
        samples_per_s=tuple(rate(s.samples, s.duration_s) for s in steps),
        tokens_per_s=tuple(rate(s.tokens, s.duration_s) for s in steps),
        loss=tuple(s.loss for s in steps),
        warmup_steps=min(session.info.warmup_steps, len(steps)),
    )
