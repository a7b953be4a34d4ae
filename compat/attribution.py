"""Which profiler phases covered an interval of wall time (pure: no torch, no I/O).

The profiler attributes time to the innermost active phase; spans carry their nesting depth. For an
interval ``[start_s, end_s)`` (a framework's own work, timed by the row script on the same
``perf_counter`` clock) each instant goes to the deepest span covering it, and time no span covers is
``other``, as in the profiler's own step breakdown.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Protocol, Sequence

OTHER = "other"


class SpanLike(Protocol):
    @property
    def phase(self) -> str: ...
    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...
    @property
    def depth(self) -> int: ...


def attribute(spans: Sequence[SpanLike], start_s: float, end_s: float) -> dict[str, float]:
    """Seconds of ``[start_s, end_s)`` per phase (innermost span wins; uncovered time is ``other``).
    The values sum to ``end_s - start_s``."""
    if end_s < start_s:
        raise ValueError(f"interval ends before it starts: [{start_s}, {end_s})")
    inside = [s for s in spans if s.end_s > start_s and s.start_s < end_s]
    cuts = sorted({start_s, end_s, *(max(start_s, min(end_s, t)) for s in inside for t in (s.start_s, s.end_s))})
    out: dict[str, float] = {}
    for a, b in zip(cuts, cuts[1:]):
        mid = (a + b) / 2
        covering = [s for s in inside if s.start_s <= mid < s.end_s]
        phase = max(covering, key=lambda s: s.depth).phase if covering else OTHER
        out[phase] = out.get(phase, 0.0) + (b - a)
    return out


def attribute_all(spans: Sequence[SpanLike], intervals: Iterable[tuple[float, float]]) -> dict[str, float]:
    """``attribute`` summed over several intervals."""
    total: dict[str, float] = {}
    for start_s, end_s in intervals:
        for phase, seconds in attribute(spans, start_s, end_s).items():
            total[phase] = total.get(phase, 0.0) + seconds
    return total


def shares(seconds: Mapping[str, float]) -> dict[str, float]:
    """Each phase's fraction of the total (0..1), largest first; empty when there is no time."""
    total = math.fsum(seconds.values())
    if total <= 0:
        return {}
    return dict(sorted(((p, s / total) for p, s in seconds.items()), key=lambda kv: -kv[1]))


def describe(share_by_phase: Mapping[str, float], at_least: float = 0.01) -> str:
    """``checkpoint 97%, other 3%``: phases holding at least ``at_least`` of the time."""
    parts = [f"{p} {round(100 * s)}%" for p, s in share_by_phase.items() if s >= at_least]
    return ", ".join(parts) if parts else "none"
