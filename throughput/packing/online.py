"""Online packing for streams: a bounded buffer of pending pieces, packed with BFD when it fills up.

When the buffer holds ``buffer_size`` pieces it is packed with the histogram BFD; rows at least
``min_fill`` full are emitted and the pieces of the other rows wait for more documents. If that leaves
more than half the buffer waiting, the fullest waiting rows are emitted too, so memory stays bounded
and the stream always advances. Emitted rows are shuffled with a generator seeded by ``seed`` (BFD
emits long documents first), so the output is a deterministic function of (input order, seed).
Torch-free.
"""

from __future__ import annotations

import math

import numpy as np

from throughput.packing.algorithms import histogram_bfd
from throughput.packing.plan import OVERFLOW_POLICIES, IntArray, PackingStats, validate_row_len

Row = IntArray
"""One emitted row: an int64 array [pieces, 3] of (doc_id, doc_start, length), in row order."""


class OnlinePacker:
    """Feed documents with ``add(length)`` (doc ids count up from 0), collect rows, then ``flush()``."""

    def __init__(self, row_len: int, *, buffer_size: int = 1024, overflow: str = "split",
                 max_docs_per_row: int | None = None, min_fill: float = 0.995, seed: int = 0) -> None:
        self.row_len = validate_row_len(row_len)
        if buffer_size < 2:
            raise ValueError(f"buffer_size must be >= 2 pieces, got {buffer_size}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        if max_docs_per_row is not None and max_docs_per_row < 1:
            raise ValueError(f"max_docs_per_row must be None or >= 1, got {max_docs_per_row}")
        if not 0.0 < min_fill <= 1.0:
            raise ValueError(f"min_fill must be in (0, 1], got {min_fill}")
        self.buffer_size, self.overflow, self.max_docs, self.min_fill = buffer_size, overflow, max_docs_per_row, min_fill
        self._rng = np.random.default_rng(seed)
        self._pending: list[tuple[int, int, int]] = []      # (doc_id, doc_start, length)
        self._docs = 0
        self._counts = {"pieces": 0, "rows": 0, "packed": 0, "in": 0, "truncated": 0, "dropped": 0,
                        "docs_truncated": 0, "docs_split": 0, "docs_dropped": 0, "max_docs": 0}

    def add(self, length: int) -> list[Row]:
        """Register the next document (``length`` tokens, >= 1); returns the rows that became ready."""
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"document {self._docs}: length must be an integer >= 1, got {length!r}")
        doc, length = self._docs, int(length)
        self._docs += 1
        self._counts["in"] += length
        self._pending.extend(self._pieces(doc, length))
        return self._pack(final=False) if len(self._pending) >= self.buffer_size else []

    def flush(self) -> list[Row]:
        """Pack and emit everything still waiting."""
        return self._pack(final=True) if self._pending else []

    @property
    def pending_pieces(self) -> int:
        return len(self._pending)

    def stats(self) -> PackingStats:
        """Statistics of the emitted rows; call after ``flush()`` (waiting tokens are not accounted)."""
        if self._pending:
            raise ValueError(f"{len(self._pending)} pieces are still waiting: call flush() before stats()")
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

    def _pieces(self, doc: int, length: int) -> list[tuple[int, int, int]]:
        L, c = self.row_len, self._counts
        if length <= L:
            return [(doc, 0, length)]
        if self.overflow == "error":
            raise ValueError(f"document {doc} has {length} tokens, more than row_len={L}; "
                             "choose overflow='split', 'truncate' or 'drop'")
        if self.overflow == "truncate":
            c["truncated"] += length - L
            c["docs_truncated"] += 1
            return [(doc, 0, L)]
        if self.overflow == "drop":
            c["dropped"] += length
            c["docs_dropped"] += 1
            return []
        c["docs_split"] += 1
        return [(doc, start, min(L, length - start)) for start in range(0, length, L)]

    def _pack(self, *, final: bool) -> list[Row]:
        pieces = np.array(self._pending, dtype=np.int64).reshape(-1, 3)
        bin_of, n_rows = histogram_bfd(pieces[:, 2], self.row_len, self.max_docs)
        order = np.argsort(bin_of, kind="stable")
        bounds = np.searchsorted(bin_of[order], np.arange(n_rows + 1))
        fill = np.bincount(bin_of, weights=pieces[:, 2], minlength=n_rows)
        emit = np.ones(n_rows, dtype=bool) if final else fill >= self.min_fill * self.row_len
        if not final:
            per_row = np.bincount(bin_of, minlength=n_rows)
            left = int(per_row[~emit].sum())
            for r in np.argsort(-fill, kind="stable").tolist():  # fullest first, until half the buffer is free
                if left <= self.buffer_size // 2:
                    break
                if not emit[r]:
                    emit[r], left = True, left - int(per_row[r])
        rows = [pieces[order[bounds[r]:bounds[r + 1]]] for r in np.flatnonzero(emit)]
        keep = ~emit[bin_of]
        self._pending = [tuple(p) for p in pieces[keep].tolist()]
        self._rng.shuffle(rows)                                  # in place; deterministic for the seed
        self._account(rows)
        return rows

    def _account(self, rows: list[Row]) -> None:
        c = self._counts
        for row in rows:
            c["rows"] += 1
            c["pieces"] += len(row)
            c["packed"] += int(row[:, 2].sum())
            c["max_docs"] = max(c["max_docs"], len(row))
