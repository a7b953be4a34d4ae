"""Packed datasets: map-style (plan everything up front) and streaming (online packer per shard).

Both yield rows as dicts ``{"input_ids": int64 array, "labels": int64 array or None, "seq_lens": int64
array}`` (unpadded: ``seq_lens`` sums to the row's fill); ``PackingCollator`` turns a list of rows into
a batch. Sharding: ``rank``/``world_size`` split the work between data-parallel ranks; DataLoader
workers split a rank's share again (streaming) or simply index it (map-style).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from throughput.packing.algorithms import pack_lengths
from throughput.packing.online import OnlinePacker, Row
from throughput.packing.plan import IntArray, PackingPlan
from throughput.packing.tokens import TokenStore, tokens_from_docs

PackedRow = dict[str, Any]


def _check_shard(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")


class PackedDataset(Dataset[PackedRow]):
    """Map-style: all documents are planned at construction (``self.plan``, with ``self.plan.stats``).
    ``docs`` as for ``tokens_from_docs``, or a ``TokenStore`` (e.g. ``tokens_from_flat`` over an Arrow column).

    With ``world_size > 1`` this rank sees rows ``rank, rank + world_size, ...``; ``even_shards=True``
    first drops the last ``rows % world_size`` rows so every rank has the same number of rows (DDP
    needs equal step counts); their tokens are reported in ``rows_dropped_for_shards``.
    """

    def __init__(self, docs: Sequence[Any] | TokenStore, row_len: int, *, algorithm: str = "histogram",
                 overflow: str = "split",
                 max_docs_per_row: int | None = None, rank: int = 0, world_size: int = 1,
                 even_shards: bool = True) -> None:
        _check_shard(rank, world_size)
        self.store: TokenStore = docs if isinstance(docs, TokenStore) else tokens_from_docs(docs)
        self.plan: PackingPlan = pack_lengths(self.store.lengths, row_len, algorithm=algorithm,  # type: ignore[arg-type]
                                              overflow=overflow, max_docs_per_row=max_docs_per_row)  # type: ignore[arg-type]
        n = self.plan.num_rows
        usable = (n // world_size) * world_size if even_shards else n
        if usable == 0:
            raise ValueError(f"only {n} packed rows for world_size={world_size}: every rank needs at least one")
        self.rows_dropped_for_shards = n - usable
        self.rows: IntArray = np.arange(usable, dtype=np.int64)[rank::world_size]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> PackedRow:
        if not -len(self.rows) <= i < len(self.rows):
            raise IndexError(f"row {i} out of range for {len(self.rows)} rows")
        doc_index, doc_start, length = self.plan.row(int(self.rows[i]))
        ids, labels = self.store.gather(doc_index, doc_start, length)
        return {"input_ids": ids, "labels": labels, "seq_lens": length.copy()}


class PackedIterableDataset(IterableDataset[PackedRow]):
    """Streaming: documents come from ``docs`` (any re-iterable: list, generator factory's result per
    epoch, HF streaming dataset...). Shard ``s = rank * num_workers + worker_id`` of ``world_size *
    num_workers`` takes documents ``s, s + shards, ...`` and packs them with an ``OnlinePacker`` seeded
    by ``(seed, s)``: output is deterministic for a given seed, worker count and world size.

    Ranks can emit different numbers of rows; under DDP stop all ranks at the same step count.
    """

    def __init__(self, docs: Iterable[Any], row_len: int, *, buffer_size: int = 1024, overflow: str = "split",
                 max_docs_per_row: int | None = None, min_fill: float = 0.995, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        _check_shard(rank, world_size)
        OnlinePacker(row_len, buffer_size=buffer_size, overflow=overflow, max_docs_per_row=max_docs_per_row,
                     min_fill=min_fill)                     # validate the settings now, not in a worker
        self.docs, self.row_len, self.seed, self.rank, self.world_size = docs, row_len, seed, rank, world_size
        self._packer_kwargs: dict[str, Any] = {"buffer_size": buffer_size, "overflow": overflow,
                                               "max_docs_per_row": max_docs_per_row, "min_fill": min_fill}

    def __iter__(self) -> Iterator[PackedRow]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        shard, shards = self.rank * workers + worker, self.world_size * workers
        seed = int(np.random.SeedSequence([self.seed, shard]).generate_state(1)[0])
        packer = OnlinePacker(self.row_len, seed=seed, **self._packer_kwargs)
        waiting: dict[int, list[Any]] = {}                   # local doc id -> [ids, labels, pieces left]
        local = 0
        for i, doc in enumerate(self.docs):
            if i % shards != shard:
                continue
            store = _one_doc(doc, i)
            pieces = -(-len(store.ids) // self.row_len) if self._packer_kwargs["overflow"] == "split" else 1
            if len(store.ids) <= self.row_len or self._packer_kwargs["overflow"] != "drop":
                waiting[local] = [store.ids, store.labels, pieces]
            rows = packer.add(len(store.ids))
            local += 1
            yield from (_materialize(row, waiting) for row in rows)
        yield from (_materialize(row, waiting) for row in packer.flush())


def _one_doc(doc: Any, index: int) -> TokenStore:
    try:
        return tokens_from_docs([doc])
    except ValueError as e:
        raise ValueError(f"stream document {index}: {e}") from e


def _materialize(row: Row, waiting: dict[int, list[Any]]) -> PackedRow:
    ids_parts, label_parts, any_labels = [], [], False
    for doc, start, length in row.tolist():
        entry = waiting[doc]
        ids_parts.append(entry[0][start:start + length])
        any_labels = any_labels or entry[1] is not None
        label_parts.append((entry[0] if entry[1] is None else entry[1])[start:start + length])
        entry[2] -= 1
        if entry[2] == 0:
            del waiting[doc]
    labels = np.concatenate(label_parts) if any_labels else None
    return {"input_ids": np.concatenate(ids_parts), "labels": labels, "seq_lens": row[:, 2].copy()}

