"""The advisor's output record: one recommendation with the numbers behind it (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Mapping, Sequence

CONFIDENCES: Final = ("high", "medium", "low")
# How much a confidence counts when ranking: measured A/B trials (high) outrank estimates from a profile.
CONFIDENCE_WEIGHT: Final[Mapping[str, float]] = {"high": 1.0, "medium": 0.6, "low": 0.3}

Setting = bool | int | float | str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One recommendation.

    ``evidence`` holds measured numbers as short sentences. ``expected_gain`` is the expected relative
    throughput gain (0.25 = 25% more samples/s), None where it cannot be estimated. ``confidence`` is
    "high" (measured by an A/B probe), "medium" (derived from the profile) or "low" (a heuristic).
    ``change`` is the exact code line or flag. ``settings`` are the plan keys this finding sets.
    """

    rule_id: str
    title: str
    evidence: tuple[str, ...]
    expected_gain: float | None
    confidence: str
    change: str
    settings: Mapping[str, Setting] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence must be one of {CONFIDENCES}, got {self.confidence!r}")
        if not self.rule_id or not self.title:
            raise ValueError("a finding needs a rule_id and a title")
        if self.expected_gain is not None and self.expected_gain != self.expected_gain:
            raise ValueError("expected_gain is NaN; use None when the gain cannot be estimated")

    @property
    def score(self) -> float:
        """Ranking key: expected gain weighted by confidence (unknown gains rank after known ones)."""
        gain = self.expected_gain if self.expected_gain is not None else 0.0
        return gain * CONFIDENCE_WEIGHT[self.confidence]


def rank(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """Highest score first; ties keep rule order (stable sort)."""
    return tuple(sorted(findings, key=lambda f: -f.score))
