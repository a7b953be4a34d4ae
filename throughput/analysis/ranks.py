"""Per-rank analysis of a multi-process run: one row per rank, the spread of step times, the
straggler (slowest rank and the phase that makes it slow) and time waiting in collectives.

Why the straggler is found by phase, not by step time: under DDP every rank meets the others in
the gradient all-reduce inside ``backward``, so all ranks end up with about the same step time. A
rank that is slow in, say, ``data`` arrives late; the *other* ranks wait for it inside their
``backward`` (their backward looks inflated). So the straggler is the rank whose time in a phase
*before* the sync point exceeds the ranks' median for that phase the most; inflated ``backward``
(or a user phase named ``collective``) on the other ranks is reported as collective wait.
Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from throughput.analysis.measured import phase_order, steady_state
from throughput.analysis.rates import rates_of
from throughput.analysis.stats import median
from throughput.session.session import Session

SYNC_PHASES = frozenset({"backward", "collective"})   # phases in which ranks wait for each other
from throughput.thresholds import STRAGGLER_MIN_SHARE  # a straggler loses >= 5% of the median step


@dataclass(frozen=True, slots=True, kw_only=True)
class RankRow:
    rank: int
    hostname: str
    steps: int                          # measured (post-warm-up) steps
    step_median_s: float
    step_mean_s: float
    phase_mean_s: Mapping[str, float]   # exclusive seconds per step, ``other`` included
    phase_share: Mapping[str, float]    # 0..1 of the rank's step wall time
    samples_per_s: float | None
    tokens_per_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Straggler:
    rank: int
    phase: str
    excess_s: float                     # per step, over the ranks' median of that phase
    median_s: float                     # the ranks' median of that phase, per step


@dataclass(frozen=True, slots=True, kw_only=True)
class RankSummary:
    world_size: int
    ranks: tuple[RankRow, ...]
    missing_ranks: tuple[int, ...]
    step_median_s: float                # median over ranks of each rank's median step time
    spread: float                       # (max - min) / median of the ranks' median step times
    slowest_rank: int                   # by mean step time
    straggler: Straggler | None         # None when no rank loses STRAGGLER_MIN_SHARE in one phase
    collective_wait_s: Mapping[int, float]   # per rank, per step: estimated waiting for other ranks
    samples_per_s: float | None         # global: sum over ranks
    tokens_per_s: float | None
    notes: tuple[str, ...]


def rank_row(session: Session) -> RankRow | None:
    m = steady_state(session)[1]
    if m is None:
        return None
    wall = m.wall_s
    totals = {p.phase: p.total_s for p in m.phases}
    r = rates_of(m)
    return RankRow(
        rank=session.info.rank, hostname=session.info.hostname, steps=m.count,
        step_median_s=m.durations.median_s, step_mean_s=wall / m.count,
        phase_mean_s={n: v / m.count for n, v in totals.items()},
        phase_share={n: v / wall if wall > 0 else 0.0 for n, v in totals.items()},
        samples_per_s=r.samples_per_s, tokens_per_s=r.tokens_per_s,
    )


def find_straggler(rows: Sequence[RankRow], min_excess_s: float) -> Straggler | None:
    """The (rank, phase) whose per-step time exceeds the ranks' median for that phase the most,
    looking at phases outside SYNC_PHASES first (where waiting does not inflate the time)."""
    if len(rows) < 2:
        return None
    names = phase_order(set().union(*(r.phase_mean_s for r in rows)))
    for candidates in ([n for n in names if n not in SYNC_PHASES and n != "other"], names):
        best: Straggler | None = None
        for name in candidates:
            values = [r.phase_mean_s.get(name, 0.0) for r in rows]
            mid = median(values)
            for row, v in zip(rows, values):
                if v - mid > min_excess_s and (best is None or v - mid > best.excess_s):
                    best = Straggler(rank=row.rank, phase=name, excess_s=v - mid, median_s=mid)
        if best is not None:
            return best
    return None


def collective_wait(rows: Sequence[RankRow]) -> dict[int, float]:
    """Per rank: time in SYNC_PHASES per step above the rank with the least, i.e. the part of its
    backward/collective spent waiting for slower ranks (an estimate: it assumes equal work)."""
    if len(rows) < 2:
        return {}
    sync = {r.rank: math.fsum(v for k, v in r.phase_mean_s.items() if k in SYNC_PHASES) for r in rows}
    floor = min(sync.values())
    return {rank: v - floor for rank, v in sorted(sync.items())}


def _global(rows: Sequence[RankRow], field: str) -> float | None:
    values = [getattr(r, field) for r in rows]
    return math.fsum(values) if values and all(v is not None for v in values) else None


def summarize_ranks(sessions: Sequence[Session]) -> RankSummary:
    """Analyse the sessions of one multi-rank run (one per rank). Raises ValueError when none has a
    measured step."""
    rows = sorted((r for r in map(rank_row, sessions) if r is not None), key=lambda r: r.rank)
    if not rows:
        raise ValueError("no rank has measured steps; nothing to merge")
    world = max(max(s.info.world_size for s in sessions), len(sessions))
    present = {r.rank for r in rows}
    medians = [r.step_median_s for r in rows]
    mid = median(medians)
    notes = []
    missing = tuple(r for r in range(world) if r not in present)
    if missing:
        notes.append(f"ranks without a session or without measured steps: {list(missing)}")
    return RankSummary(
        world_size=world, ranks=tuple(rows), missing_ranks=missing, step_median_s=mid,
        spread=(max(medians) - min(medians)) / mid if mid > 0 else 0.0,
        slowest_rank=max(rows, key=lambda r: r.step_mean_s).rank,
        straggler=find_straggler(rows, STRAGGLER_MIN_SHARE * mid),
        collective_wait_s=collective_wait(rows),
        samples_per_s=_global(rows, "samples_per_s"), tokens_per_s=_global(rows, "tokens_per_s"),
        notes=tuple(notes),
    )
