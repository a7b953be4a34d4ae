"""What the measured search returns, and its small pure helpers (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from throughput.advisor.memory import MemoryFit
from throughput.advisor.trials import ProbeResult, Trial
from throughput.finding import Finding, Setting


class AdvisorError(RuntimeError):
    """The search cannot produce a plan (e.g. out of memory at the smallest batch); one-line message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult:
    config: Mapping[str, Setting]
    result: ProbeResult
    baseline: Trial
    trials: tuple[Trial, ...]
    findings: tuple[Finding, ...]
    memory_fit: MemoryFit | None
    predicted_peak_bytes: float | None     # the fit's prediction at the chosen size (fit excludes it)
    elapsed_s: float
    notes: tuple[str, ...] = ()


def _near_points(points: Mapping[int, int | None], size: int | None) -> list[tuple[int, int]]:
    """The (up to) three largest sizes: memory is closest to linear there (small batches are dominated
    by allocator granularity), and they are the nearest to the size being predicted."""
    return [(m, p) for m, p in sorted(points.items())[-3:] if p is not None]


def loss_disagreement(ref: tuple[float, ...], other: tuple[float, ...]) -> float | None:
    """Mean relative difference of step losses over the steps both probes ran (None: nothing to compare)."""
    n = min(len(ref), len(other))
    pairs = [(a, b) for a, b in zip(ref[:n], other[:n]) if abs(a) > 1e-12]
    if not pairs:
        return None
    return sum(abs(b - a) / abs(a) for a, b in pairs) / len(pairs)


def collapse(findings: list[Finding]) -> tuple[Finding, ...]:
    """One finding per knob: the steps a search took along one coordinate (8 -> 16 -> 32) become one
    recommendation of the final value, with the gains compounded and every step's evidence kept."""
    merged: dict[str, Finding] = {}
    for f in findings:
        prev = merged.get(f.rule_id)
        if prev is None:
            merged[f.rule_id] = f
            continue
        settings = {**prev.settings, **f.settings}
        gain = (1 + (prev.expected_gain or 0.0)) * (1 + (f.expected_gain or 0.0)) - 1
        merged[f.rule_id] = Finding(
            rule_id=f.rule_id, title="Set " + " ".join(f"{k}={v}" for k, v in settings.items()),
            evidence=prev.evidence + f.evidence, expected_gain=gain, confidence=f.confidence,
            action=" ".join(f"--set {k}={v}" for k, v in settings.items()), settings=settings)
    return tuple(merged.values())
