"""Packing algorithms on integer lengths: which document goes in which row, before any token moves.

Two offline packers, both best-fit decreasing (BFD): each piece, longest first, goes into the open row
with the least room that still fits it, or into a new row.

- ``"bfd"``: the textbook per-piece loop. Open rows are kept in stacks by remaining capacity (integers in
  ``1..row_len``) and a segment tree over capacities finds the smallest capacity >= the piece in
  O(log row_len). Cost O(n log row_len) Python steps (about a million pieces per few seconds).
- ``"histogram"``: the same BFD, done a run of equal lengths at a time. Because lengths are integers,
  the pieces of one length ``s`` arrive together, and BFD sends them to the row with capacity ``c``
  (the smallest >= s) until it has less than ``s`` left: each such row takes ``c // s`` pieces. So whole
  groups of rows with equal capacity are filled with one numpy call. Cost grows with the number of
  distinct lengths and capacities, not with the number of documents. With no ``max_docs_per_row`` it
  gives exactly the row fills of ``"bfd"`` (rows may be numbered differently).
"""

from __future__ import annotations

import bisect
from typing import Literal, Sequence

import numpy as np
import numpy.typing as npt

from throughput.packing.kernels import bfd_assign
from throughput.packing.plan import (IntArray, Overflow, PackingPlan, apply_overflow, build_plan, stable_order,
                                     validate_lengths, validate_row_len)

Algorithm = Literal["histogram", "bfd"]
ALGORITHMS: tuple[str, ...] = ("histogram", "bfd")


def pack_lengths(lengths: Sequence[int] | npt.ArrayLike, row_len: int, *, algorithm: Algorithm = "histogram",
                 overflow: Overflow = "split", max_docs_per_row: int | None = None) -> PackingPlan:
    """Plan rows of at most ``row_len`` tokens for documents of the given lengths (tokens, >= 1 each).

    ``overflow`` says what happens to documents longer than ``row_len``: ``"split"`` into row-sized
    chunks that are then packed, ``"truncate"`` to their first ``row_len`` tokens, ``"drop"``, or
    ``"error"`` (ValueError). The plan's stats count what was truncated, split or dropped.
    ``max_docs_per_row`` caps the pieces in one row (None: no cap). Raises ValueError on bad input.
    """
    n_rows_len = validate_row_len(row_len)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if max_docs_per_row is not None and (isinstance(max_docs_per_row, bool) or
                                         not isinstance(max_docs_per_row, (int, np.integer)) or max_docs_per_row < 1):
        raise ValueError(f"max_docs_per_row must be None or an integer >= 1, got {max_docs_per_row!r}")
    lens = validate_lengths(lengths)
    pieces = apply_overflow(lens, n_rows_len, overflow)
    cap = None if max_docs_per_row is None else int(max_docs_per_row)
    if algorithm == "histogram":
        bin_of, n_rows = histogram_bfd(pieces.length, n_rows_len, cap)
    else:                                                    # compiled when numba is installed
        bin_of, n_rows = bfd_assign(pieces.length, descending_order(pieces.length, n_rows_len), n_rows_len, cap)
    return build_plan(pieces, bin_of, n_rows, n_rows_len, len(lens), int(lens.sum()), cap)


def descending_order(length: IntArray, row_len: int) -> IntArray:
    """Indices sorting ``length`` (each in 1..row_len) longest first, ties by index (stable)."""
    return stable_order(row_len - length)


class _OpenRows:
    """Open rows grouped by remaining capacity: ``groups[c]`` is a list of (row ids, docs in each);
    ``caps`` lists the capacities that have open rows, ascending (bisect finds the best fit)."""

    def __init__(self, max_docs: int | None) -> None:
        self.caps: list[int] = []
        self.groups: dict[int, list[tuple[IntArray, int]]] = {}
        self.max_docs = max_docs

    def push(self, ids: IntArray, cap: int, docs: int) -> None:
        if cap == 0 or len(ids) == 0 or (self.max_docs is not None and docs >= self.max_docs):
            return                                           # full: the row is closed for good
        stack = self.groups.get(cap)
        if stack is None:
            self.groups[cap] = stack = []
            bisect.insort(self.caps, cap)
        stack.append((ids, docs))

    def at_least(self, s: int) -> list[int]:
        """Capacities >= s with open rows, ascending (a copy: the caller may push while iterating)."""
        return self.caps[bisect.bisect_left(self.caps, s):]

    def close_capacity(self, c: int) -> None:
        del self.groups[c]
        del self.caps[bisect.bisect_left(self.caps, c)]


def histogram_bfd(length: IntArray, row_len: int, max_docs: int | None) -> tuple[IntArray, int]:
    """BFD one run of equal lengths at a time. Returns (row of each piece, number of rows)."""
    order = descending_order(length, row_len)
    hist = np.bincount(length, minlength=row_len + 1)
    placed = np.empty(len(length), dtype=np.int64)           # row of each piece, in `order` order
    rows = _OpenRows(max_docs)
    pos = n_rows = 0
    for s in np.flatnonzero(hist)[::-1].tolist():
        k = int(hist[s])
        for c in rows.at_least(s):
            pos, k = _fill_capacity(rows, placed, pos, k, s, c)
            if k == 0:
                break
        if k:
            pos, n_rows = _open_new_rows(rows, placed, pos, k, s, row_len, n_rows)
    bin_of = np.empty_like(placed)
    bin_of[order] = placed
    return bin_of, n_rows


def _fill_capacity(rows: _OpenRows, placed: IntArray, pos: int, k: int, s: int, c: int) -> tuple[int, int]:
    """Put up to ``k`` pieces of length ``s`` into the open rows with capacity ``c``; returns (pos, k left)."""
    q = c // s
    stack = rows.groups[c]
    while k and stack:
        ids, docs = stack.pop()
        t = q if rows.max_docs is None else min(q, rows.max_docs - docs)   # pieces each row takes
        take = min(len(ids), k // t)                         # rows that take t pieces each
        placed[pos:pos + take * t] = np.repeat(ids[:take], t) if t > 1 else ids[:take]
        pos, k = pos + take * t, k - take * t
        rows.push(ids[:take], c - t * s, docs + t)
        rest = ids[take:]
        if len(rest) and k:                                  # 0 < k < t: one row takes the last k
            placed[pos:pos + k] = rest[0]
            rows.push(rest[:1], c - k * s, docs + k)
            pos, k, rest = pos + k, 0, rest[1:]
        if len(rest):
            stack.append((rest, docs))
    if not stack:
        rows.close_capacity(c)
    return pos, k


def _open_new_rows(rows: _OpenRows, placed: IntArray, pos: int, k: int, s: int, row_len: int,
                   n_rows: int) -> tuple[int, int]:
    t = row_len // s if rows.max_docs is None else min(row_len // s, rows.max_docs)
    full, r = divmod(k, t)
    ids = np.arange(n_rows, n_rows + full, dtype=np.int64)
    placed[pos:pos + full * t] = np.repeat(ids, t) if t > 1 else ids
    rows.push(ids, row_len - t * s, t)
    pos, n_rows = pos + full * t, n_rows + full
    if r:
        placed[pos:pos + r] = n_rows
        rows.push(np.array([n_rows], dtype=np.int64), row_len - r * s, r)
        pos, n_rows = pos + r, n_rows + 1
    return pos, n_rows


class _CapacityTree:
    """Which capacities in 0..row_len have an open row; finds the smallest one >= s in O(log row_len)."""

    def __init__(self, row_len: int) -> None:
        self.leaves = 1 << (row_len + 1).bit_length()
        self.flag = [False] * (2 * self.leaves)

    def set(self, c: int, value: bool) -> None:
        i = self.leaves + c
        self.flag[i] = value
        i >>= 1
        while i and self.flag[i] != (self.flag[2 * i] or self.flag[2 * i + 1]):
            self.flag[i] = not self.flag[i]
            i >>= 1

    def smallest_at_least(self, s: int) -> int:
        """Smallest flagged capacity >= s, or -1."""
        flag, i = self.flag, self.leaves + s
        if flag[i]:
            return s
        while not (i % 2 == 0 and flag[i + 1]):              # climb until a right sibling has one
            i >>= 1
            if i <= 1:
                return -1
        i += 1
        while i < self.leaves:                               # descend to its leftmost flagged leaf
            i = 2 * i if flag[2 * i] else 2 * i + 1
        return i - self.leaves


def exact_bfd(length: IntArray, row_len: int, max_docs: int | None,
              order: IntArray | None = None) -> tuple[IntArray, int]:
    """Textbook BFD, one piece at a time, visiting pieces in ``order`` (default: longest first, ties by
    index). Returns (row of each piece, number of rows). ``kernels.bfd_assign`` is its compiled twin."""
    tree = _CapacityTree(row_len)
    stacks: list[list[int]] = [[] for _ in range(row_len + 1)]   # open rows per remaining capacity
    docs_in: list[int] = []
    bin_of = np.empty(len(length), dtype=np.int64)
    lens = length.tolist()
    limit = max_docs if max_docs is not None else len(lens) + 1
    for i in (descending_order(length, row_len) if order is None else order).tolist():
        s = lens[i]
        c = tree.smallest_at_least(s)
        if c < 0:
            b, c = len(docs_in), row_len
            docs_in.append(0)
        else:
            b = stacks[c].pop()
            if not stacks[c]:
                tree.set(c, False)
        bin_of[i] = b
        docs_in[b] += 1
        left = c - s
        if left > 0 and docs_in[b] < limit:
            stacks[left].append(b)
            if len(stacks[left]) == 1:
                tree.set(left, True)
    return bin_of, len(docs_in)
