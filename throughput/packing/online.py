"""Online packing for streams: a bounded buffer of pending pieces, repacked with BFD when it fills up.

Documents arrive in order (ids count up from 0), one at a time (``add``) or in batches (``extend``,
the fast path: the per-document work is numpy over the batch). When the buffer holds ``buffer_size``
pieces, all pending pieces are packed with best-fit decreasing (``kernels.bfd_assign``, compiled with
numba when installed); rows at least ``min_fill`` full leave, the pieces of the other rows wait for
more documents. If that leaves more than half the buffer waiting, the fullest waiting rows leave too,
so memory stays bounded (at most ``buffer_size`` pieces plus the pieces of one split document) and the
stream always advances. The rows that leave in one repack are shuffled with a generator seeded by
``seed`` (BFD emits long documents first). The buffer fills at the same documents however the stream
is cut into batches, so the output is a deterministic function of (input order, seed): ``extend``
over any batching gives the rows of ``add`` one by one. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from throughput.packing.kernels import repack, take_rows
from throughput.packing.plan import OVERFLOW_POLICIES, IntArray, PackingStats, apply_overflow, validate_row_len

Row = IntArray
"""One emitted row: an int64 array [pieces, 3] of (doc_id, doc_start, length), in row order."""

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, slots=True, kw_only=True)
class PackedRows:
    """Rows in CSR form: the pieces of row ``r`` are ``row_offsets[r]:row_offsets[r + 1]``; per piece
    ``doc_id`` (position of the document in the stream), ``doc_start`` (first token taken) and
    ``length`` (tokens). Iterating yields one ``Row`` array per row."""

    row_offsets: IntArray
    doc_id: IntArray
    doc_start: IntArray
    length: IntArray

    @property
    def num_rows(self) -> int:
        return len(self.row_offsets) - 1

    def __len__(self) -> int:
        return self.num_rows

    def row(self, r: int) -> Row:
        lo, hi = int(self.row_offsets[r]), int(self.row_offsets[r + 1])
        return np.stack([self.doc_id[lo:hi], self.doc_start[lo:hi], self.length[lo:hi]], axis=1)

    def __iter__(self) -> Iterator[Row]:
        return (self.row(r) for r in range(self.num_rows))

    @staticmethod
    def concat(parts: Sequence[PackedRows]) -> PackedRows:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return PackedRows(row_offsets=np.zeros(1, np.int64), doc_id=_EMPTY, doc_start=_EMPTY, length=_EMPTY)
        counts = np.concatenate([np.diff(p.row_offsets) for p in parts])
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return PackedRows(row_offsets=offsets, doc_id=np.concatenate([p.doc_id for p in parts]),
                          doc_start=np.concatenate([p.doc_start for p in parts]),
                          length=np.concatenate([p.length for p in parts]))


class OnlinePacker:
    """Feed documents with ``extend(lengths)`` or ``add(length)``, collect rows, then ``flush()``."""

    def __init__(self, row_len: int, *, buffer_size: int = 1024, overflow: str = "split",
                 max_docs_per_row: int | None = None, min_fill: float = 1.0, seed: int = 0) -> None:
        self.row_len = validate_row_len(row_len)
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)) or buffer_size < 2:
            raise ValueError(f"buffer_size must be an integer >= 2 pieces, got {buffer_size!r}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        if max_docs_per_row is not None and max_docs_per_row < 1:
            raise ValueError(f"max_docs_per_row must be None or >= 1, got {max_docs_per_row}")
        if not 0.0 < min_fill <= 1.0:
            raise ValueError(f"min_fill must be in (0, 1], got {min_fill}")
        self.buffer_size, self.overflow, self.max_docs, self.min_fill = int(buffer_size), overflow, max_docs_per_row, min_fill
        self._fill_needed = math.ceil(min_fill * self.row_len - 1e-9)     # tokens a row needs to leave early
        self._rng = np.random.default_rng(seed)
        self._pool = np.zeros((0, 3), dtype=np.int64)      # pending pieces: (doc_id, doc_start, length)
        self._docs = 0
        self._counts = {"pieces": 0, "rows": 0, "packed": 0, "in": 0, "truncated": 0, "dropped": 0,
                        "docs_truncated": 0, "docs_split": 0, "docs_dropped": 0, "max_docs": 0}

    def extend(self, lengths: Sequence[int] | npt.ArrayLike) -> PackedRows:
        """Register the next documents (token counts, >= 1 each); returns the rows that became ready."""
        lens = self._validated(lengths)
        if len(lens) == 0:
            return PackedRows.concat([])
        doc_index, doc_start, length = self._pieces(lens)
        ends = np.cumsum(np.bincount(doc_index, minlength=len(lens)))   # pieces up to and including doc i
        new = np.stack([doc_index + self._docs, doc_start, length], axis=1)
        self._docs += len(lens)
        out, doc, taken = [], 0, 0
        while doc < len(lens):
            # The first document after which the buffer holds buffer_size pieces triggers a repack.
            j = int(np.searchsorted(ends, taken + self.buffer_size - len(self._pool), side="left"))
            stop = int(ends[min(j, len(lens) - 1)])
            self._pool = np.concatenate([self._pool, new[taken:stop]])
            if j >= len(lens):
                break
            out.append(self._pack(final=False))
            doc, taken = j + 1, stop
        return PackedRows.concat(out)

    def add(self, length: int) -> PackedRows:
        """Register one document (``length`` tokens, >= 1); returns the rows that became ready."""
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"document {self._docs}: length must be an integer >= 1, got {length!r}")
        return self.extend(np.array([length], dtype=np.int64))

    def flush(self) -> PackedRows:
        """Pack and emit everything still waiting."""
        return self._pack(final=True) if len(self._pool) else PackedRows.concat([])

    @property
    def pending_pieces(self) -> int:
        return len(self._pool)

    @property
    def docs_seen(self) -> int:
        """Documents registered so far (the next one gets this id)."""
        return self._docs

    def pending_doc_ids(self) -> IntArray:
        """Ids of the documents with pieces still waiting, ascending."""
        return np.unique(self._pool[:, 0])

    def stats(self) -> PackingStats:
        """Statistics of the emitted rows; call after ``flush()`` (waiting tokens are not accounted)."""
        if len(self._pool):
            raise ValueError(f"{len(self._pool)} pieces are still waiting: call flush() before stats()")
        c, rows = self._counts, self._counts["rows"]
        lower = math.ceil(c["packed"] / self.row_len)
        if self.max_docs is not None:
            lower = max(lower, math.ceil(c["pieces"] / self.max_docs))
        return PackingStats(
            docs=self._docs, pieces=c["pieces"], rows=rows, rows_lower_bound=lower, row_len_tokens=self.row_len,
            tokens_in=c["in"], tokens_packed=c["packed"], tokens_truncated=c["truncated"], tokens_dropped=c["dropped"],
            docs_truncated=c["docs_truncated"], docs_split=c["docs_split"], docs_dropped=c["docs_dropped"],
            utilization=c["packed"] / (rows * self.row_len) if rows else 0.0,
            docs_per_row_mean=c["pieces"] / rows if rows else 0.0, docs_per_row_max=c["max_docs"])

    def _validated(self, lengths: Sequence[int] | npt.ArrayLike) -> IntArray:
        arr = np.asarray(lengths)
        if arr.ndim != 1 or arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise ValueError(f"documents {self._docs}...: lengths must be a 1-D sequence of integers, "
                             f"got shape {arr.shape} dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        bad = np.flatnonzero(arr < 1)
        if bad.size:
            raise ValueError(f"document {self._docs + int(bad[0])}: length must be an integer >= 1, "
                             f"got {int(arr[bad[0]])}")
        return arr

    def _pieces(self, lens: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """Apply the overflow policy to a batch; account what it cut. (doc index in batch, start, length)."""
        L, c = self.row_len, self._counts
        if self.overflow == "error" and int(lens.max()) > L:
            first = int(np.flatnonzero(lens > L)[0])
            raise ValueError(f"document {self._docs + first} has {int(lens[first])} tokens, more than "
                             f"row_len={L}; choose overflow='split', 'truncate' or 'drop'")
        pieces = apply_overflow(lens, L, self.overflow)
        c["in"] += int(lens.sum())
        c["truncated"] += pieces.tokens_truncated
        c["dropped"] += pieces.tokens_dropped
        c["docs_truncated"] += pieces.docs_truncated
        c["docs_split"] += pieces.docs_split
        c["docs_dropped"] += pieces.docs_dropped
        return pieces.doc_index, pieces.doc_start, pieces.length

    def _pack(self, *, final: bool) -> PackedRows:
        bin_of, _, per_row, rows = repack(self._pool[:, 2], self.row_len, self.max_docs, self._fill_needed,
                                          self.buffer_size // 2, final)
        rows = rows[self._rng.permutation(len(rows))]       # deterministic for the seed
        take, offsets, stay = take_rows(bin_of, rows, per_row)
        out = self._pool[take]
        self._pool = self._pool[stay]
        c = self._counts
        c["rows"] += len(rows)
        c["pieces"] += len(take)
        c["packed"] += int(out[:, 2].sum())
        c["max_docs"] = max(c["max_docs"], int(per_row[rows].max()) if len(rows) else 0)
        return PackedRows(row_offsets=offsets, doc_id=out[:, 0], doc_start=out[:, 1], length=out[:, 2])
