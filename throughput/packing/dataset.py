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
from throughput.packing.online import OnlinePacker, PackedRows
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
        self.plan: PackingPlan = pack_lengths(self.store.lengths, row_len, algorithm=algorithm,  # type: ignore[arg-type]  # str names checked by pack_lengths
                                              overflow=overflow, max_docs_per_row=max_docs_per_row)  # type: ignore[arg-type]  # idem
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
    """Streaming: documents come from ``docs`` (any re-iterable: a list, an object whose ``__iter__``
    restarts, a Hugging Face streaming dataset...). Shard ``s = rank * num_workers + worker_id`` of
    ``world_size * num_workers`` takes documents ``s, s + shards, ...``, so every document of an epoch
    lands in exactly one shard, and packs them with an ``OnlinePacker`` seeded by ``(seed, epoch, s)``:
    the output is deterministic for a given seed, epoch, worker count and world size. Call
    ``set_epoch(e)`` before each epoch (as with ``DistributedSampler``) for a new shuffle of the rows.

    Documents are read ``chunk_docs`` at a time and handed to the packer as one batch (the rows do not
    depend on the chunk size). Memory: the packer's buffer plus one chunk of documents.
    Rows also carry ``doc_index``: the stream position of each piece's document.
    Ranks can emit different numbers of rows; under DDP stop all ranks at the same step count.
    """

    def __init__(self, docs: Iterable[Any], row_len: int, *, buffer_size: int = 1024, overflow: str = "split",
                 max_docs_per_row: int | None = None, min_fill: float = 1.0, seed: int = 0, rank: int = 0,
                 world_size: int = 1, chunk_docs: int = 256) -> None:
        _check_shard(rank, world_size)
        if chunk_docs < 1:
            raise ValueError(f"chunk_docs must be >= 1, got {chunk_docs}")
        OnlinePacker(row_len, buffer_size=buffer_size, overflow=overflow, max_docs_per_row=max_docs_per_row,
                     min_fill=min_fill)                     # validate the settings now, not in a worker
        self.docs, self.row_len, self.seed, self.rank, self.world_size = docs, row_len, seed, rank, world_size
        self.chunk_docs, self.epoch = chunk_docs, 0
        self._packer_kwargs: dict[str, Any] = {"buffer_size": buffer_size, "overflow": overflow,
                                               "max_docs_per_row": max_docs_per_row, "min_fill": min_fill}

    def set_epoch(self, epoch: int) -> None:
        """Use the row shuffle of ``epoch`` (every epoch still sees every document exactly once)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[PackedRow]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        shard, shards = self.rank * workers + worker, self.world_size * workers
        seed = int(np.random.SeedSequence([self.seed, self.epoch, shard]).generate_state(1)[0])
        packer = OnlinePacker(self.row_len, seed=seed, **self._packer_kwargs)
        waiting = _Waiting(self.row_len, self._packer_kwargs["overflow"])
        chunk: list[tuple[int, Any]] = []
        for i, doc in enumerate(self.docs):
            if i % shards == shard:
                chunk.append((i, doc))
                if len(chunk) == self.chunk_docs:
                    yield from waiting.rows(packer.extend(waiting.add(chunk)))
                    chunk = []
        if chunk:
            yield from waiting.rows(packer.extend(waiting.add(chunk)))
        yield from waiting.rows(packer.flush())


class _Waiting:
    """Tokens of the documents whose pieces have not all left the packer, by the packer's doc id."""

    def __init__(self, row_len: int, overflow: str) -> None:
        self.docs: dict[int, list[Any]] = {}                 # doc id -> [ids, labels, stream index, tokens to come]
        self.next_id, self.row_len, self.overflow = 0, row_len, overflow

    def add(self, chunk: list[tuple[int, Any]]) -> IntArray:
        """Convert a chunk of (stream index, document); returns their lengths for the packer."""
        try:
            store = tokens_from_docs([doc for _, doc in chunk])
        except ValueError:
            for index, doc in chunk:                         # error path only: name the stream position
                try:
                    tokens_from_docs([doc])
                except ValueError as e:
                    raise ValueError(f"stream document {index}: {e}") from e
            raise
        lengths = store.lengths
        for k, (index, _) in enumerate(chunk):
            lo, hi = int(store.offsets[k]), int(store.offsets[k + 1])
            packed = hi - lo if hi - lo <= self.row_len or self.overflow == "split" else (
                self.row_len if self.overflow == "truncate" else 0)          # "drop": never placed
            if packed:
                labels = None if store.labels is None else store.labels[lo:hi].copy()
                self.docs[self.next_id + k] = [store.ids[lo:hi].copy(), labels, index, packed]
        self.next_id += len(chunk)
        return lengths

    def rows(self, packed: PackedRows) -> Iterator[PackedRow]:
        for r in range(packed.num_rows):
            lo, hi = int(packed.row_offsets[r]), int(packed.row_offsets[r + 1])
            yield self._row(packed.doc_id[lo:hi].tolist(), packed.doc_start[lo:hi].tolist(), packed.length[lo:hi])

    def _row(self, doc_ids: list[int], starts: list[int], lengths: IntArray) -> PackedRow:
        ids_parts, label_parts, index, any_labels = [], [], [], False
        for doc, start, n in zip(doc_ids, starts, lengths.tolist()):
            entry = self.docs[doc]
            ids_parts.append(entry[0][start:start + n])
            any_labels = any_labels or entry[1] is not None
            label_parts.append((entry[0] if entry[1] is None else entry[1])[start:start + n])
            index.append(entry[2])
            entry[3] -= n
            if entry[3] == 0:
                del self.docs[doc]                           # all it will place has left
        labels = np.concatenate(label_parts) if any_labels else None
        return {"input_ids": np.concatenate(ids_parts), "labels": labels, "seq_lens": lengths.copy(),
                "doc_index": np.array(index, dtype=np.int64)}
