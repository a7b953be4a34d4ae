"""Per-rank analysis on hand-made sessions: straggler, collective wait, spread, global rates."""

from __future__ import annotations

import pytest

from tests.helpers import make_steps
from throughput.analysis.ranks import summarize_ranks
from throughput.session.records import RunInfo
from throughput.session.session import Session


def rank_session(rank: int, world: int, **phase_s: float) -> Session:
    steps = make_steps([phase_s] * 5, samples=4)
    return Session(info=RunInfo(run_id=f"r{rank}", rank=rank, world_size=world, warmup_steps=0,
                                hostname="node0"), steps=steps)


def test_ddp_straggler_in_data_and_wait_in_backward() -> None:
    # Ranks 0 and 2 load a batch in 10 ms; rank 1 takes 60 ms. The all-reduce in backward makes
    # ranks 0 and 2 wait 50 ms there: every step lasts 0.11 s (0.01+0.02+0.08 = 0.06+0.02+0.03).
    sessions = [rank_session(0, 3, data=0.01, forward=0.02, backward=0.08),
                rank_session(1, 3, data=0.06, forward=0.02, backward=0.03),
                rank_session(2, 3, data=0.01, forward=0.02, backward=0.08)]
    r = summarize_ranks(sessions)
    assert r.world_size == 3 and r.missing_ranks == ()
    assert r.step_median_s == pytest.approx(0.11) and r.spread == pytest.approx(0.0)
    assert r.straggler is not None
    # data medians over ranks: median(0.01, 0.06, 0.01) = 0.01; rank 1 exceeds it by 0.05 s per step
    assert (r.straggler.rank, r.straggler.phase) == (1, "data")
    assert r.straggler.excess_s == pytest.approx(0.05) and r.straggler.median_s == pytest.approx(0.01)
    # backward above the least (rank 1's 0.03 s): 0.05 s of waiting per step on ranks 0 and 2
    assert r.collective_wait_s == {0: pytest.approx(0.05), 1: pytest.approx(0.0), 2: pytest.approx(0.05)}
    # 4 samples per 0.11 s step on each of 3 ranks
    assert r.samples_per_s == pytest.approx(3 * 4 / 0.11)
    row1 = r.ranks[1]
    assert row1.phase_share["data"] == pytest.approx(0.06 / 0.11)


def test_balanced_ranks_have_no_straggler_and_spread_is_hand_derived() -> None:
    # step times 0.100 and 0.102 s: spread = (0.102 - 0.100) / median(0.100, 0.102) = 0.002 / 0.101
    sessions = [rank_session(0, 2, forward=0.05, backward=0.05),
                rank_session(1, 2, forward=0.051, backward=0.051)]
    r = summarize_ranks(sessions)
    assert r.straggler is None            # 1 ms excess < 5% of the 0.101 s median step
    assert r.spread == pytest.approx(0.002 / 0.101)
    assert r.slowest_rank == 1


def test_missing_rank_is_noted() -> None:
    r = summarize_ranks([rank_session(0, 2, forward=0.05)])
    assert r.missing_ranks == (1,) and "[1]" in r.notes[0]
    with pytest.raises(ValueError, match="no rank has measured steps"):
        summarize_ranks([Session(info=RunInfo(run_id="x", world_size=2))])
