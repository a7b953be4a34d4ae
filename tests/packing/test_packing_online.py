"""OnlinePacker: every token emitted exactly once, bounded buffer, deterministic for a seed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throughput.packing import OnlinePacker


def run(lengths: list[int], **kwargs: object) -> tuple[list[np.ndarray], OnlinePacker, int]:
    packer = OnlinePacker(**kwargs)  # type: ignore[arg-type]
    rows, most_waiting = [], 0
    for n in lengths:
        rows += packer.add(n)
        most_waiting = max(most_waiting, packer.pending_pieces)
    rows += packer.flush()
    return rows, packer, most_waiting


@settings(max_examples=80, deadline=None)
@given(lengths=st.lists(st.integers(1, 100), min_size=1, max_size=300), row_len=st.integers(8, 64),
       buffer_size=st.integers(2, 40), overflow=st.sampled_from(["split", "truncate", "drop"]),
       max_docs=st.one_of(st.none(), st.integers(1, 4)))
def test_online_conserves_tokens_and_bounds_buffer(lengths: list[int], row_len: int, buffer_size: int,
                                                   overflow: str, max_docs: int | None) -> None:
    rows, packer, most_waiting = run(lengths, row_len=row_len, buffer_size=buffer_size, overflow=overflow,
                                     max_docs_per_row=max_docs, seed=3)
    # A split document adds up to ceil(100 / 8) = 13 pieces at once on top of a buffer just under full.
    assert most_waiting < buffer_size + 13
    pieces: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        assert 0 < row[:, 2].sum() <= row_len
        assert max_docs is None or len(row) <= max_docs
        for doc, start, n in row.tolist():
            pieces.setdefault(doc, []).append((start, n))
    covered: dict[int, int] = {}
    for doc, parts in pieces.items():                        # the pieces of a document tile a prefix of it
        parts.sort()
        assert [start for start, _ in parts] == np.cumsum([0] + [n for _, n in parts[:-1]]).tolist()
        covered[doc] = sum(n for _, n in parts)
    s = packer.stats()
    assert s.tokens_in == sum(lengths) == s.tokens_packed + s.tokens_truncated + s.tokens_dropped
    assert s.tokens_packed == sum(covered.values())
    for doc, n in enumerate(lengths):
        expect = {"split": n, "truncate": min(n, row_len), "drop": n if n <= row_len else 0}[overflow]
        assert covered.get(doc, 0) == expect


def rows_of(packer: OnlinePacker, batches: list[list[int]]) -> list[list[list[int]]]:
    out = [packer.extend(b) for b in batches] + [packer.flush()]
    return [r.tolist() for part in out for r in part]


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 150), min_size=1, max_size=400), cuts=st.lists(st.integers(0, 400)),
       buffer_size=st.integers(2, 64), seed=st.integers(0, 3))
def test_rows_depend_on_input_order_and_seed_only(lengths: list[int], cuts: list[int], buffer_size: int,
                                                  seed: int) -> None:
    # However the stream is cut into extend() batches, the rows are those of add() one document at a time.
    bounds = sorted({0, len(lengths), *(c for c in cuts if c < len(lengths))})
    batches = [lengths[a:b] for a, b in zip(bounds, bounds[1:])]
    one_by_one = rows_of(OnlinePacker(64, buffer_size=buffer_size, seed=seed), [[n] for n in lengths])
    assert rows_of(OnlinePacker(64, buffer_size=buffer_size, seed=seed), batches) == one_by_one


def test_compiled_and_numpy_paths_give_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    from throughput.packing import kernels
    if not kernels.COMPILED:
        pytest.skip("numba is not installed: only the numpy path exists here")
    rng = np.random.default_rng(4)
    lengths = np.concatenate([rng.integers(1, 300, 3000), rng.integers(900, 1025, 200)])
    rng.shuffle(lengths)
    compiled = rows_of(OnlinePacker(1024, buffer_size=256, seed=1, max_docs_per_row=6), [lengths.tolist()])
    monkeypatch.setattr(kernels, "_COMPILED", None)
    numpy_path = rows_of(OnlinePacker(1024, buffer_size=256, seed=1, max_docs_per_row=6), [lengths.tolist()])
    assert compiled == numpy_path


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 200), min_size=1, max_size=300), row_len=st.integers(1, 200),
       max_docs=st.one_of(st.none(), st.integers(1, 5)))
def test_compiled_bfd_is_exact_bfd(lengths: list[int], row_len: int, max_docs: int | None) -> None:
    from throughput.packing.algorithms import descending_order, exact_bfd
    from throughput.packing.kernels import bfd_assign
    length = np.minimum(np.array(lengths, dtype=np.int64), row_len)
    bin_of, n_rows = bfd_assign(length, descending_order(length, row_len), row_len, max_docs)
    ref_bin_of, ref_rows = exact_bfd(length, row_len, max_docs)
    assert n_rows == ref_rows and bin_of.tolist() == ref_bin_of.tolist()


def test_online_is_deterministic_for_a_seed() -> None:
    lengths = np.random.default_rng(0).integers(1, 50, 500).tolist()
    a, _, _ = run(lengths, row_len=64, buffer_size=32, seed=7)
    b, _, _ = run(lengths, row_len=64, buffer_size=32, seed=7)
    c, _, _ = run(lengths, row_len=64, buffer_size=32, seed=8)
    assert [r.tolist() for r in a] == [r.tolist() for r in b]
    assert [r.tolist() for r in a] != [r.tolist() for r in c]
    assert sorted(map(str, (r.tolist() for r in a))) == sorted(map(str, (r.tolist() for r in c)))


def test_online_utilization_close_to_offline() -> None:
    # 4000 docs of mean 25 tokens, rows of 128: with 256 waiting pieces BFD finds near-full rows.
    lengths = np.random.default_rng(1).integers(1, 50, 4000).tolist()
    _, packer, _ = run(lengths, row_len=128, buffer_size=256)
    s = packer.stats()
    assert s.utilization > 0.98, s


def test_online_bad_input() -> None:
    with pytest.raises(ValueError, match="buffer_size must be an integer >= 2"):
        OnlinePacker(8, buffer_size=1)
    with pytest.raises(ValueError, match="row_len must be >= 1"):
        OnlinePacker(0)
    packer = OnlinePacker(8)
    with pytest.raises(ValueError, match="document 0: length must be an integer >= 1, got 0"):
        packer.add(0)
    with pytest.raises(ValueError, match="more than row_len=8"):
        OnlinePacker(8, overflow="error").add(9)
    packer.add(3)
    with pytest.raises(ValueError, match="call flush"):
        packer.stats()
    with pytest.raises(ValueError, match="document 1: length must be an integer >= 1, got -2"):
        packer.extend([-2])
    with pytest.raises(ValueError, match="lengths must be a 1-D sequence of integers"):
        packer.extend([1.5])
    with pytest.raises(ValueError, match="document 3 has 9 tokens, more than row_len=8"):
        OnlinePacker(8, overflow="error").extend([1, 2, 3, 9])
