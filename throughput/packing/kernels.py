"""The per-piece best-fit-decreasing loop, compiled with numba when it is installed. Torch-free.

Why compiled: the streaming packer repacks a buffer of ~1024 pieces every ~512 documents, and at that
size nearly every length is distinct, so the histogram BFD (one numpy call per distinct length, see
algorithms.py) costs about 2 us a piece and the per-piece Python loop (``exact_bfd``) about 1-2 us:
0.25-0.4 M documents/s, against a target of 3 M. Any placement that decides piece by piece through
numpy calls pays at least ~1 us a call, so no numpy formulation of BFD reaches 3 M docs/s at this
buffer size; compiled, the same loop takes ~30 ns a piece. numba is the well-kept library for
compiling a numeric Python loop without a build step (pip ``throughput[fast]``). Without it,
``bfd_assign`` runs ``exact_bfd``: the same rows, piece for piece (a test checks this), more slowly.

Semantics (those of ``exact_bfd``): pieces are taken longest first, ties by index; each goes to the open
row with the least remaining capacity that still fits it, the most recently opened-or-refilled row among
rows of equal capacity (a stack per capacity), or opens a new row. A row closes when it is full or holds
``max_docs`` pieces.
"""

from __future__ import annotations

import types
from typing import Any, Callable

import numpy as np

from throughput.packing.plan import IntArray

_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_SIX = np.uint64(6)
_LOW6 = np.uint64(63)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_SHIFT = np.uint64(58)
_DEBRUIJN_TABLE = np.zeros(64, dtype=np.int64)
for _i in range(64):                                      # lowest set bit -> its index, by multiplication
    _DEBRUIJN_TABLE[((1 << _i) * 0x03F79D71B4CB0A89 % (1 << 64)) >> 58] = _i


def _bfd_loop(length: Any, order: Any, row_len: int, limit: int, bin_of: Any) -> int:
    """Fill ``bin_of`` (row of each piece) visiting pieces in ``order``; returns the number of rows.
    Open rows are kept in a stack per remaining capacity; a two-level bitmap of the capacities that
    have open rows finds the best fit in a few word operations. Runs compiled only (numba)."""
    top = np.full(row_len + 1, -1, np.int64)              # top[c]: last row pushed with capacity c
    below = np.empty(len(length) + 1, np.int64)           # below[r]: next row in r's capacity stack
    docs_in = np.zeros(len(length) + 1, np.int64)
    words = np.zeros((row_len >> 6) + 1, np.uint64)        # bit c & 63 of words[c >> 6]: capacity c is open
    summary = np.zeros((len(words) >> 6) + 1, np.uint64)   # bit w & 63 of summary[w >> 6]: words[w] != 0
    n_rows = 0
    for i in order:
        s = length[i]
        c = _smallest_at_least(words, summary, s) if s < row_len else -1
        if c < 0:
            b, c = n_rows, row_len
            n_rows += 1
        else:
            b = top[c]
            top[c] = below[b]
            if top[c] < 0:
                _set_bit(words, summary, c, False)
        bin_of[i] = b
        docs_in[b] += 1
        left = c - s
        if left > 0 and docs_in[b] < limit:
            if top[left] < 0:
                _set_bit(words, summary, left, True)
            below[b] = top[left]
            top[left] = b
    return n_rows


def _lowest_bit(m: Any) -> int:
    return _DEBRUIJN_TABLE[((m & (~m + _ONE)) * _DEBRUIJN) >> _DEBRUIJN_SHIFT]


def _set_bit(words: Any, summary: Any, c: int, on: bool) -> None:
    w = c >> 6
    bit = _ONE << np.uint64(c & 63)
    wbit = _ONE << np.uint64(w & 63)
    if on:
        words[w] |= bit
        summary[w >> 6] |= wbit
    else:
        words[w] &= ~bit
        if words[w] == 0:
            summary[w >> 6] &= ~wbit


def _smallest_at_least(words: Any, summary: Any, s: int) -> int:
    """Smallest open capacity >= s, or -1."""
    w = s >> 6
    m = words[w] & (_ALL << np.uint64(s & 63))
    if m:
        return (w << 6) + _lowest_bit(m)
    w += 1
    if w >= len(words):
        return -1
    k = w >> 6
    m = summary[k] & (_ALL << np.uint64(w & 63))
    while not m:
        k += 1
        if k >= len(summary):
            return -1
        m = summary[k]
    w = (k << 6) + _lowest_bit(m)
    return (w << 6) + _lowest_bit(words[w])


def _pack_loop(length: Any, row_len: int, limit: int, fill_needed: int, wait_cap: int, final: bool,
               bin_of: Any, fill: Any, per_row: Any) -> tuple[Any, int]:
    """One repack of the streaming buffer: BFD over the pieces, longest first with ties by index (a
    counting sort), then the rows that leave: those with ``fill >= fill_needed`` (all when ``final``),
    then the fullest others (ties by row) until at most ``wait_cap`` pieces wait. Fills ``bin_of``,
    ``fill`` and ``per_row``; returns (the leaving rows ascending, the number of rows)."""
    n = len(length)
    count = np.zeros(row_len + 2, np.int64)
    for i in range(n):
        count[row_len - length[i] + 1] += 1
    for v in range(1, row_len + 2):
        count[v] += count[v - 1]
    order = np.empty(n, np.int64)
    for i in range(n):
        k = row_len - length[i]
        order[count[k]] = i
        count[k] += 1
    n_rows = _bfd_loop(length, order, row_len, limit, bin_of)
    fill[:n_rows] = 0
    per_row[:n_rows] = 0
    for i in range(n):
        fill[bin_of[i]] += length[i]
        per_row[bin_of[i]] += 1
    emit = np.zeros(n_rows, np.bool_)
    waiting = 0
    for r in range(n_rows):
        emit[r] = final or fill[r] >= fill_needed
        if not emit[r]:
            waiting += per_row[r]
    if waiting > wait_cap:
        cand = np.flatnonzero(~emit)
        cand = cand[np.argsort(-fill[cand], kind="mergesort")]
        for k in range(len(cand)):
            r = cand[k]
            if waiting <= wait_cap:
                break
            emit[r] = True
            waiting -= per_row[r]
    return np.flatnonzero(emit), n_rows


def _take_loop(bin_of: Any, rows: Any, per_row: Any, n_rows: int, take: Any, offsets: Any, stay: Any) -> None:
    """Pieces of ``rows`` (in that order) into ``take``, each row's pieces in buffer order; ``offsets``
    CSR; the other pieces, in buffer order, into ``stay``."""
    rank = np.full(n_rows, -1, np.int64)
    for k in range(len(rows)):
        rank[rows[k]] = k
        offsets[k + 1] = offsets[k] + per_row[rows[k]]
    cursor = offsets[:-1].copy()
    j = 0
    for i in range(len(bin_of)):
        k = rank[bin_of[i]]
        if k >= 0:
            take[cursor[k]] = i
            cursor[k] += 1
        else:
            stay[j] = i
            j += 1


def _compile() -> dict[str, Callable[..., Any]] | None:
    try:
        import numba
    except ImportError:
        return None
    jit = numba.njit(cache=True, nogil=True)
    done: dict[str, Callable[..., Any]] = {}
    loops: tuple[Any, ...] = (_lowest_bit, _set_bit, _smallest_at_least, _bfd_loop, _pack_loop, _take_loop)
    for fn in loops:                     # each compiled with the compiled versions of those before it
        env = dict(fn.__globals__, **done)
        done[fn.__name__] = jit(types.FunctionType(fn.__code__, env, fn.__name__))
    return done


_COMPILED = _compile()
COMPILED: bool = _COMPILED is not None
"""True when numba compiled the loops (``pip install 'throughput[fast]'``)."""


def bfd_assign(length: IntArray, order: IntArray, row_len: int, max_docs: int | None) -> tuple[IntArray, int]:
    """Row of each piece and the number of rows, BFD over ``order`` (see the module docstring).
    ``length``: int64, each in 1..row_len; ``order``: the visiting order (longest first)."""
    if _COMPILED is None:
        from throughput.packing.algorithms import exact_bfd
        return exact_bfd(length, row_len, max_docs, order=order)
    bin_of = np.empty(len(length), dtype=np.int64)
    n_rows = _COMPILED["_bfd_loop"](_i64(length), _i64(order), int(row_len), _limit(max_docs, len(length)), bin_of)
    return bin_of, int(n_rows)


def repack(length: IntArray, row_len: int, max_docs: int | None, fill_needed: int, wait_cap: int,
           final: bool) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """One repack of a streaming buffer (see ``_pack_loop``): (row of each piece, tokens per row,
    pieces per row, leaving rows ascending). Compiled, or the same steps in numpy."""
    n = len(length)
    bin_of, fill, per_row = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    if _COMPILED is not None:
        rows, n_rows = _COMPILED["_pack_loop"](_i64(length), int(row_len), _limit(max_docs, n), int(fill_needed),
                                               int(wait_cap), bool(final), bin_of, fill, per_row)
        return bin_of, fill[:n_rows], per_row[:n_rows], rows
    from throughput.packing.algorithms import descending_order, exact_bfd
    bin_of, n_rows = exact_bfd(length, row_len, max_docs, order=descending_order(length, row_len))
    fill = np.bincount(bin_of, weights=length, minlength=n_rows).astype(np.int64)
    per_row = np.bincount(bin_of, minlength=n_rows).astype(np.int64)
    emit = np.ones(n_rows, dtype=bool) if final else fill >= fill_needed
    excess = int(per_row[~emit].sum()) - wait_cap
    if excess > 0:
        cand = np.flatnonzero(~emit)
        cand = cand[np.argsort(-fill[cand], kind="stable")]
        k = int(np.searchsorted(np.cumsum(per_row[cand]), excess, side="left")) + 1
        emit[cand[:k]] = True
    return bin_of, fill, per_row, np.flatnonzero(emit)


def take_rows(bin_of: IntArray, rows: IntArray, per_row: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """(indices of the pieces of ``rows``, row by row and in buffer order inside a row; CSR offsets;
    indices of the other pieces, ascending)."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    if _COMPILED is not None:
        n_take = int(per_row[rows].sum())
        take, stay = np.empty(n_take, dtype=np.int64), np.empty(len(bin_of) - n_take, dtype=np.int64)
        _COMPILED["_take_loop"](_i64(bin_of), _i64(rows), _i64(per_row), len(per_row), take, offsets, stay)
        return take, offsets, stay
    from throughput.packing.plan import stable_order
    rank = np.full(len(per_row), -1, dtype=np.int64)
    rank[rows] = np.arange(len(rows), dtype=np.int64)
    idx = np.flatnonzero(rank[bin_of] >= 0)
    np.cumsum(per_row[rows], out=offsets[1:])
    return idx[stable_order(rank[bin_of[idx]])], offsets, np.flatnonzero(rank[bin_of] < 0)


def _i64(a: IntArray) -> IntArray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _limit(max_docs: int | None, n: int) -> int:
    return n + 1 if max_docs is None else int(max_docs)
