"""Exact best-fit decreasing, one piece at a time: the reference that ``algorithms`` (offline, by runs
of equal lengths) and ``kernels`` (compiled, for streams) must agree with. A leaf of ``packing``: it
imports only ``plan``, so both of them can use it without importing each other."""

from __future__ import annotations

import numpy as np

from throughput.packing.plan import IntArray, stable_order


def descending_order(length: IntArray, row_len: int) -> IntArray:
    """Indices sorting ``length`` (each in 1..row_len) longest first, ties by index (stable)."""
    return stable_order(row_len - length)


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
