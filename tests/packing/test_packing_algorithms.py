"""Packing plans on lengths: hand-worked BFD, properties (hypothesis), overflow policies, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throughput.packing import PackingPlan, pack_lengths

ALGOS = ["histogram", "bfd"]


def rows_of(plan: PackingPlan) -> list[list[int]]:
    return [plan.row(r)[0].tolist() for r in range(plan.num_rows)]


@pytest.mark.parametrize("algorithm", ALGOS)
def test_bfd_hand_worked(algorithm: str) -> None:
    # row_len 8, lengths [5, 4, 3, 3, 2, 1], longest first:
    # 5 -> new row A (room 3); 4 -> nothing has room 4: new row B (room 4); 3 -> best fit A (room 3 -> 0);
    # 3 -> B (4 -> 1); 2 -> nothing has room 2: new row C (room 6); 1 -> best fit B (1 -> 0).
    plan = pack_lengths([5, 4, 3, 3, 2, 1], 8, algorithm=algorithm)  # type: ignore[arg-type]
    assert rows_of(plan) == [[0, 2], [1, 3, 5], [4]]
    assert plan.row_fill().tolist() == [5 + 3, 4 + 3 + 1, 2]
    assert plan.row_start.tolist() == [0, 5, 0, 4, 7, 0]
    s = plan.stats
    assert (s.rows, s.rows_lower_bound, s.tokens_packed) == (3, math.ceil(18 / 8), 18)
    assert s.utilization == pytest.approx(18 / (3 * 8))
    assert (s.docs_per_row_mean, s.docs_per_row_max) == (6 / 3, 3)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_overflow_policies_are_counted(algorithm: str) -> None:
    split = pack_lengths([10, 3], 4, algorithm=algorithm, overflow="split")  # type: ignore[arg-type]
    # doc 0 -> pieces (start 0, 4 tokens), (4, 4), (8, 2); doc 1 -> (0, 3). BFD: 4 | 4 | 3 | 2 (2 fits no room 1)
    assert sorted(zip(split.doc_index.tolist(), split.doc_start.tolist(), split.length.tolist())) == [
        (0, 0, 4), (0, 4, 4), (0, 8, 2), (1, 0, 3)]
    assert (split.stats.rows, split.stats.docs_split, split.stats.tokens_packed) == (4, 1, 13)
    trunc = pack_lengths([10, 3], 4, algorithm=algorithm, overflow="truncate")  # type: ignore[arg-type]
    assert (trunc.stats.tokens_packed, trunc.stats.tokens_truncated, trunc.stats.docs_truncated) == (4 + 3, 10 - 4, 1)
    assert trunc.stats.utilization == pytest.approx(7 / 8)
    drop = pack_lengths([10, 3], 4, algorithm=algorithm, overflow="drop")  # type: ignore[arg-type]
    assert (drop.stats.tokens_packed, drop.stats.tokens_dropped, drop.stats.docs_dropped) == (3, 10, 1)
    assert drop.doc_index.tolist() == [1]
    with pytest.raises(ValueError, match=r"1 documents are longer than row_len=4 .*lengths\[0\] = 10"):
        pack_lengths([10, 3], 4, algorithm=algorithm, overflow="error")  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ALGOS)
def test_max_docs_per_row(algorithm: str) -> None:
    # Ten 1-token docs, row_len 100: without a cap one row; with a cap of 3, ceil(10 / 3) = 4 rows.
    assert pack_lengths([1] * 10, 100, algorithm=algorithm).stats.rows == 1  # type: ignore[arg-type]
    capped = pack_lengths([1] * 10, 100, algorithm=algorithm, max_docs_per_row=3)  # type: ignore[arg-type]
    assert np.diff(capped.row_offsets).tolist() == [3, 3, 3, 1]
    assert capped.stats.rows_lower_bound == math.ceil(10 / 3)


@pytest.mark.parametrize("bad, message", [
    ([], "lengths is empty"),
    ([3, 0, 2], r"at least 1 token: lengths\[1\] = 0"),
    ([3, -2], r"lengths\[1\] = -2"),
    ([1.5, 2], r"whole numbers of tokens: lengths\[0\] = 1.5"),
    (["a"], "must be integers"),
    ([[1, 2]], "1-D"),
])
def test_bad_lengths(bad: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pack_lengths(bad, 8)  # type: ignore[arg-type]


@pytest.mark.parametrize("row_len", [0, -4, 2.5, True])
def test_bad_row_len(row_len: object) -> None:
    with pytest.raises(ValueError, match="row_len must be"):
        pack_lengths([1, 2], row_len)  # type: ignore[arg-type]


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="algorithm must be one of"):
        pack_lengths([1], 8, algorithm="ffd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="overflow must be one of"):
        pack_lengths([1], 8, overflow="wrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_docs_per_row must be None or an integer >= 1"):
        pack_lengths([1], 8, max_docs_per_row=0)


def check_plan(plan: PackingPlan, lengths: list[int], row_len: int, max_docs: int | None) -> None:
    s = plan.stats
    assert s.tokens_in == sum(lengths) == s.tokens_packed + s.tokens_truncated + s.tokens_dropped
    fill = plan.row_fill()
    assert (fill <= row_len).all() and (fill > 0).all()
    per_row = np.diff(plan.row_offsets)
    assert (per_row >= 1).all() and (max_docs is None or (per_row <= max_docs).all())
    # Pieces of a document tile a prefix of it without overlap (all of it unless truncated or dropped).
    for d, n in enumerate(lengths):
        mine = plan.doc_index == d
        starts, lens = plan.doc_start[mine], plan.length[mine]
        order = np.argsort(starts)
        ends = np.cumsum(lens[order])
        assert (starts[order] == np.concatenate([[0], ends[:-1]])).all()
        assert (ends[-1] if len(ends) else 0) in (n, min(n, row_len), 0)
    # row_start is the running fill inside each row
    for r in range(plan.num_rows):
        lo, hi = plan.row_offsets[r], plan.row_offsets[r + 1]
        assert plan.row_start[lo:hi].tolist() == (np.cumsum(plan.length[lo:hi]) - plan.length[lo:hi]).tolist()
    assert s.rows >= s.rows_lower_bound == max(math.ceil(s.tokens_packed / row_len),
                                               math.ceil(s.pieces / max_docs) if max_docs else 0)


@settings(max_examples=150, deadline=None)
@given(lengths=st.lists(st.integers(1, 80), min_size=1, max_size=120), row_len=st.integers(1, 64),
       overflow=st.sampled_from(["split", "truncate", "drop"]), max_docs=st.one_of(st.none(), st.integers(1, 5)),
       algorithm=st.sampled_from(ALGOS))
def test_plan_invariants(lengths: list[int], row_len: int, overflow: str, max_docs: int | None, algorithm: str) -> None:
    if overflow == "drop" and all(n > row_len for n in lengths):
        lengths = lengths + [1]                  # keep at least one piece so there is a row
    plan = pack_lengths(lengths, row_len, algorithm=algorithm, overflow=overflow,  # type: ignore[arg-type]
                        max_docs_per_row=max_docs)
    check_plan(plan, lengths, row_len, max_docs)


@settings(max_examples=150, deadline=None)
@given(lengths=st.lists(st.integers(1, 64), min_size=1, max_size=300), row_len=st.integers(1, 64))
def test_histogram_is_exactly_bfd(lengths: list[int], row_len: int) -> None:
    # Same multiset of row contents (as lengths), so the same number of rows and the same utilization.
    a = pack_lengths(lengths, row_len, algorithm="bfd")
    b = pack_lengths(lengths, row_len, algorithm="histogram")
    rows_a = sorted(tuple(sorted(a.length[a.row_offsets[r]:a.row_offsets[r + 1]].tolist())) for r in range(a.num_rows))
    rows_b = sorted(tuple(sorted(b.length[b.row_offsets[r]:b.row_offsets[r + 1]].tolist())) for r in range(b.num_rows))
    assert rows_a == rows_b


def test_numpy_input_and_large_run() -> None:
    # 1000 docs of 3 tokens in rows of 10: 3 per row, 1000 / 3 -> 333 full rows + 1 row with one doc.
    plan = pack_lengths(np.full(1000, 3, dtype=np.int32), 10)
    assert plan.stats.rows == 334 and plan.stats.docs_per_row_max == 3
    assert plan.stats.utilization == pytest.approx(3000 / (334 * 10))
