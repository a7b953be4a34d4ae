"""Packed datasets with real DataLoader workers and per-rank sharding."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from torch.utils.data import DataLoader

from throughput.packing import PackedDataset, PackedIterableDataset, PackingCollator

ROW_LEN = 64


def make_docs(n: int, seed: int = 0) -> list[list[int]]:
    # Token k of document d is d * 1000 + k: every token says where it came from.
    lengths = np.random.default_rng(seed).integers(1, 90, n)
    return [[d * 1000 + k for k in range(int(m))] for d, m in enumerate(lengths)]


def tokens_seen(batches: list[dict]) -> Counter[int]:
    seen: Counter[int] = Counter()
    for b in batches:
        ids, labels = b["input_ids"], b["labels"]
        real = (labels != -100) | (b["position_ids"] == 0) & (ids != 0)   # first tokens have label -100
        seen.update(ids[real].tolist())
    return seen


def test_map_style_with_workers_sees_every_token_once() -> None:
    docs = make_docs(300)
    ds = PackedDataset(docs, ROW_LEN)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=PackingCollator(ROW_LEN))
    seen = tokens_seen(list(loader))
    assert seen == Counter(t for d in docs for t in d if t != 0)


def test_map_style_ranks_partition_rows() -> None:
    docs = make_docs(200)
    full = PackedDataset(docs, ROW_LEN)
    n = full.plan.num_rows
    shards = [PackedDataset(docs, ROW_LEN, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [n // 3] * 3
    assert shards[0].rows_dropped_for_shards == n % 3
    rows = sorted(int(r) for s in shards for r in s.rows)
    assert rows == list(range(n - n % 3))
    with pytest.raises(ValueError, match="need 0 <= rank < world_size"):
        PackedDataset(docs, ROW_LEN, rank=3, world_size=3)


def test_streaming_workers_and_ranks_cover_the_stream_once() -> None:
    docs = make_docs(400, seed=1)
    batches = []
    for rank in range(2):
        ds = PackedIterableDataset(docs, ROW_LEN, buffer_size=32, seed=5, rank=rank, world_size=2)
        batches += list(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=PackingCollator(ROW_LEN)))
    assert tokens_seen(batches) == Counter(t for d in docs for t in d if t != 0)


def test_streaming_is_deterministic_for_a_seed() -> None:
    docs = make_docs(300, seed=2)

    def rows(seed: int) -> list[list[int]]:
        ds = PackedIterableDataset(docs, ROW_LEN, buffer_size=32, seed=seed)
        return [r["input_ids"].tolist() for r in ds]

    assert rows(1) == rows(1)
    assert rows(1) != rows(2)


def test_streaming_keeps_completion_masks_and_reports_bad_docs() -> None:
    docs = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4, 5], "labels": [4, 5]}]
    (row,) = list(PackedIterableDataset(docs, 8, buffer_size=2))
    assert row["labels"].tolist() == [-100, 2, 3, 4, 5] and row["seq_lens"].tolist() == [3, 2]
    with pytest.raises(ValueError, match=r"stream document 1: document 0: input_ids must be integer"):
        list(PackedIterableDataset([[1, 2], [0.5]], 8))
