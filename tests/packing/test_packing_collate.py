"""Tensors from packed rows: hand-worked batch, properties against the lengths, bad documents."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from throughput.packing import (PackedDataset, PackingCollator, block_causal_mask, pack_to_tensors, tokens_from_docs,
                                tokens_from_flat)


def test_hand_worked_batch() -> None:
    # Lengths 3, 2, 4 in rows of 6. BFD: 4 (doc 2) opens row A (room 2); 3 (doc 0) opens row B (room 3);
    # 2 (doc 1) best-fits A. Inside a row, documents keep input order: A = doc 1, doc 2; B = doc 0.
    batch, plan = pack_to_tensors([[5, 6, 7], [8, 9], [1, 2, 3, 4]], 6, pad_id=0, attn_mask=True)
    assert batch["input_ids"].tolist() == [[8, 9, 1, 2, 3, 4], [5, 6, 7, 0, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 9, -100, 2, 3, 4], [-100, 6, 7, -100, -100, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1, 2, 3], [0, 1, 2, 0, 1, 2]]
    # flattened sequences: 2, 4 | 3, tail 3  ->  cu_seqlens 0, 2, 6, 9, 12
    assert batch["cu_seqlens"].tolist() == [0, 2, 6, 9, 12] and batch["cu_seqlens"].dtype == torch.int32
    assert batch["max_seqlen"] == 4
    mask = batch["attn_mask"]
    assert mask.shape == (2, 1, 6, 6) and mask.dtype == torch.bool
    assert mask[0, 0, 3].tolist() == [False, False, True, True, False, False]   # doc 2's 2nd token: itself + 1st
    assert plan.stats.utilization == pytest.approx(9 / 12)


def test_completion_only_labels_are_kept() -> None:
    docs = [{"input_ids": [1, 2, 3, 4], "labels": [-100, -100, 3, 4]}, {"input_ids": [5, 6], "labels": [5, 6]}]
    batch, _ = pack_to_tensors(docs, 8)
    # one row: doc 0 then doc 1; the prompt mask of doc 0 stays, the first token of doc 1 is masked
    assert batch["labels"].tolist() == [[-100, -100, 3, 4, -100, 6, -100, -100]]


def test_collator_pads_to_longest_and_mixes_labels() -> None:
    rows = [{"input_ids": [1, 2, 3], "labels": [-100, -100, 3], "seq_lens": [3]},
            {"input_ids": [4, 5, 6, 7], "labels": None, "seq_lens": [2, 2]}]
    batch = PackingCollator(16, pad_to="longest", pad_id=9)(rows)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 9], [4, 5, 6, 7]]
    assert batch["labels"].tolist() == [[-100, -100, 3, -100], [-100, 5, -100, 7]]
    assert batch["cu_seqlens"].tolist() == [0, 3, 4, 6, 8]
    with pytest.raises(ValueError, match="empty list of rows"):
        PackingCollator(16)([])
    with pytest.raises(ValueError, match="pad_to must be"):
        PackingCollator(16, pad_to="max")  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=30), row_len=st.integers(4, 48),
       overflow=st.sampled_from(["split", "truncate"]), scale=st.sampled_from([1, 10]))
def test_tensors_consistent_with_lengths(lengths: list[int], row_len: int, overflow: str, scale: int) -> None:
    # scale 10 makes documents long enough for the slice-copy path, scale 1 takes the vectorised gather
    lengths, row_len = [n * scale for n in lengths], row_len * scale
    rng = np.random.default_rng(len(lengths))
    docs = [rng.integers(1, 1000, n).tolist() for n in lengths]
    batch, plan = pack_to_tensors(docs, row_len, overflow=overflow, attn_mask=scale == 1)
    ids, labels, pos = batch["input_ids"].numpy(), batch["labels"].numpy(), batch["position_ids"].numpy()
    seqs = []
    for r in range(plan.num_rows):
        col = 0
        for d, start, n in zip(*plan.row(r)):
            assert ids[r, col:col + n].tolist() == docs[d][start:start + n]
            assert pos[r, col:col + n].tolist() == list(range(n))
            assert labels[r, col] == -100 and labels[r, col + 1:col + n].tolist() == docs[d][start + 1:start + n]
            seqs.append(int(n))
            col += int(n)
        assert (labels[r, col:] == -100).all() and pos[r, col:].tolist() == list(range(row_len - col))
        seqs += [row_len - col] if col < row_len else []
    assert batch["cu_seqlens"].tolist() == np.cumsum([0] + seqs).tolist()
    assert batch["max_seqlen"] == max(seqs)
    # the mask, from its definition: same segment (position resets) and causal
    if scale == 1:
        seg = torch.from_numpy(np.cumsum(pos == 0, axis=1))
        assert torch.equal(batch["attn_mask"], block_causal_mask(seg))


@pytest.mark.parametrize("docs, message", [
    ([], "docs is empty"),
    ([[1, 2], []], "document 1 has no tokens"),
    ([[1, 2], [3, 4.5]], r"document 1: input_ids must be integer token ids, found 4.5"),
    ([[1, "a"]], "document 0: input_ids must be integer token ids, found 'a'"),
    ([[1, 2], (3, None)], "document 1: input_ids must be integer token ids, found None"),
    ([[1, [2]]], r"document 0: input_ids must be integer token ids, found \[2\]"),
    ([[1], [2**70]], f"document 1: input_ids must be integer token ids, found {2**70}, which does not fit in 64 bits"),
    ([{"input_ids": [1, 2], "labels": [-100, 0.5]}], "document 0: labels must be integer token ids, found 0.5"),
    ([np.array([1.0, 2.0])], "document 0: input_ids must be a 1-D sequence of integer token ids"),
    ([[1, -3]], "token ids must be >= 0, found -3"),
    ([{"input_ids": [1, 2], "labels": [1]}], "document 0: labels and input_ids differ in length"),
    ([{"input_ids": [1, 2], "labels": [1, 2]}, {"input_ids": [3]}], "document 1 has no labels"),
    ("abc", "sequence of token sequences"),
])
def test_bad_documents(docs: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tokens_from_docs(docs)  # type: ignore[arg-type]


def test_array_and_tensor_documents() -> None:
    store = tokens_from_docs([np.array([1, 2], dtype=np.int32), torch.tensor([3, 4, 5])])
    assert store.ids.tolist() == [1, 2, 3, 4, 5] and store.offsets.tolist() == [0, 2, 5]


def test_mixed_document_forms() -> None:
    # list, tuple, int16 array, tensor, list holding numpy ints: lengths 2, 1, 2, 1, 2 -> offsets 0 2 3 5 6 8
    store = tokens_from_docs([[1, 2], (3,), np.array([4, 5], dtype=np.int16), torch.tensor([6]), [np.int64(7), 8]])
    assert store.ids.dtype == np.int64 and store.ids.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert store.offsets.tolist() == [0, 2, 3, 5, 6, 8]
    labelled = tokens_from_docs([{"input_ids": (1, 2), "labels": np.array([-100, 2])},
                                 {"input_ids": [3], "labels": (3,)}])
    assert labelled.ids.tolist() == [1, 2, 3] and labelled.labels is not None
    assert labelled.labels.tolist() == [-100, 2, 3]


def test_gather_copies_pieces_in_order() -> None:
    store = tokens_from_docs([list(range(100)), list(range(100, 200))])    # doc 1 starts at flat offset 100
    # short pieces (mean 2.5 tokens: one vectorised gather): doc 1 [0:2], doc 0 [0:3]
    ids, labels = store.gather(np.array([1, 0]), np.array([0, 0]), np.array([2, 3]))
    assert ids.tolist() == [100, 101, 0, 1, 2] and labels is None
    # long pieces (mean 75 tokens: slice copies): all of doc 1, then doc 0 from token 50
    ids, _ = store.gather(np.array([1, 0]), np.array([0, 50]), np.array([100, 50]))
    assert ids.tolist() == list(range(100, 200)) + list(range(50, 100))


def test_flat_store_packs_like_lists() -> None:
    # The CSR form of [[5, 6, 7], [8, 9], [1, 2, 3, 4]]: values and offsets 0, 3, 5, 9.
    store = tokens_from_flat(np.array([5, 6, 7, 8, 9, 1, 2, 3, 4], dtype=np.int32), np.array([0, 3, 5, 9]))
    assert store.ids.dtype == np.int32                           # used in place, not widened
    ids, _ = store.gather(np.array([2, 0]), np.array([0, 1]), np.array([4, 2]))   # doc 2, then doc 0 from 1
    assert ids.dtype == np.int64 and ids.tolist() == [1, 2, 3, 4, 6, 7]
    from_flat, _ = pack_to_tensors(store, 6)
    from_lists, _ = pack_to_tensors([[5, 6, 7], [8, 9], [1, 2, 3, 4]], 6)
    assert all(torch.equal(from_flat[k], from_lists[k]) for k in ("input_ids", "labels", "position_ids", "cu_seqlens"))
    assert [r["input_ids"].tolist() for r in PackedDataset(store, 6)] == [[8, 9, 1, 2, 3, 4], [5, 6, 7]]
    with pytest.raises(ValueError, match="offsets end at 8 but there are 9 tokens"):
        tokens_from_flat(np.arange(9), np.array([0, 3, 8]))
    with pytest.raises(ValueError, match="input_ids must be a 1-D integer array"):
        tokens_from_flat(np.ones(3), np.array([0, 3]))
