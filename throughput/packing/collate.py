"""From packed rows to the tensors a model consumes.

Per batch (``B`` rows, ``T`` columns, ``T`` = ``row_len`` or the longest row):

- ``input_ids`` [B, T] int64, ``pad_id`` after the last document of a row.
- ``labels`` [B, T] int64, HF convention (the model shifts: position t predicts ``labels[t]`` from
  tokens < t). The first token of every document is -100, so nothing is predicted across a boundary;
  -100 given in the input labels (completion-only masks) are kept; padding is -100.
- ``position_ids`` [B, T] int64, restarting at 0 for each document (and for the padding tail).
- ``cu_seqlens`` int32 and ``max_seqlen`` (int) for varlen flash attention over the flattened [B*T]
  tokens: every document is one sequence, and so is each row's padding tail (its labels are all -100).
- ``attn_mask`` [B, 1, T, T] bool (True = attend), only on request: block-diagonal causal, for SDPA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import torch

from throughput.packing.algorithms import pack_lengths
from throughput.packing.plan import IntArray, PackingPlan, validate_row_len
from throughput.packing.tokens import expand, tokens_from_docs

IGNORE_INDEX = -100


def block_causal_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """[B, T] segment ids -> [B, 1, T, T] bool mask: query i sees key j iff j <= i in the same segment."""
    if segment_ids.ndim != 2:
        raise ValueError(f"segment_ids must be [batch, tokens], got shape {tuple(segment_ids.shape)}")
    t = segment_ids.shape[1]
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    causal = torch.ones(t, t, dtype=torch.bool, device=segment_ids.device).tril()
    return (same & causal).unsqueeze(1)


def build_batch(ids: IntArray, labels: IntArray | None, seq_lens: IntArray, docs_per_row: IntArray, width: int, *,
                pad_id: int = 0, attn_mask: bool = False) -> dict[str, Any]:
    """Lay out documents (``ids`` concatenated in row order, ``seq_lens`` tokens each, ``docs_per_row``
    documents per row) in a [rows, width] batch. Vectorised: no Python loop over rows or documents."""
    n_rows, n_docs = len(docs_per_row), len(seq_lens)
    doc_row = np.repeat(np.arange(n_rows, dtype=np.int64), docs_per_row)
    fill = np.bincount(doc_row, weights=seq_lens, minlength=n_rows).astype(np.int64)
    if n_rows and fill.max() > width:
        raise ValueError(f"a row holds {fill.max()} tokens, more than the width {width}")
    doc_first = np.cumsum(seq_lens) - seq_lens                     # first flat token of each doc
    row_first = np.cumsum(fill) - fill                             # first flat token of each row
    doc_dest = doc_row * width + doc_first - row_first[doc_row]    # where each doc starts in the batch
    tok = np.arange(len(ids), dtype=np.int64)
    dest = expand(doc_dest - doc_first, seq_lens) + tok             # batch position of each token
    input_ids = np.full(n_rows * width, pad_id, dtype=np.int64)
    input_ids[dest] = ids
    out_labels = np.full(n_rows * width, IGNORE_INDEX, dtype=np.int64)
    out_labels[dest] = ids if labels is None else labels
    out_labels[doc_dest] = IGNORE_INDEX                            # nothing predicts a document's first token
    col = np.arange(width, dtype=np.int64)
    positions = (col[None, :] - fill[:, None]).reshape(-1)         # padding tail counts from 0 too
    positions[dest] = tok - expand(doc_first, seq_lens)
    seqs = np.insert(seq_lens, np.cumsum(docs_per_row), width - fill)
    seqs = seqs[seqs > 0]
    cu = np.zeros(len(seqs) + 1, dtype=np.int32)
    np.cumsum(seqs, out=cu[1:])
    batch: dict[str, Any] = {
        "input_ids": torch.from_numpy(input_ids.reshape(n_rows, width)),
        "labels": torch.from_numpy(out_labels.reshape(n_rows, width)),
        "position_ids": torch.from_numpy(positions.reshape(n_rows, width)),
        "cu_seqlens": torch.from_numpy(cu),
        "max_seqlen": int(seqs.max()) if len(seqs) else 0,
        "seq_lens": torch.from_numpy(np.ascontiguousarray(seq_lens, dtype=np.int64)),
    }
    if attn_mask:
        segments = np.repeat(n_docs + np.arange(n_rows, dtype=np.int64), width)   # tail: a segment per row
        segments[dest] = expand(np.arange(n_docs, dtype=np.int64), seq_lens)
        batch["attn_mask"] = block_causal_mask(torch.from_numpy(segments.reshape(n_rows, width)))
    return batch


@dataclass(frozen=True, slots=True)
class PackingCollator:
    """Collate rows from ``PackedDataset``/``PackedIterableDataset`` (dicts with ``input_ids``,
    ``labels`` or None, ``seq_lens``) into one batch (see the module docstring).

    ``pad_to="row"`` gives [B, row_len] (static shapes, good for compilers); ``"longest"`` trims to the
    fullest row in the batch. ``attn_mask=True`` adds the [B, 1, T, T] block-diagonal causal mask.
    """

    row_len: int
    pad_id: int = 0
    pad_to: Literal["row", "longest"] = "row"
    attn_mask: bool = False

    def __post_init__(self) -> None:
        validate_row_len(self.row_len)
        if self.pad_to not in ("row", "longest"):
            raise ValueError(f"pad_to must be 'row' or 'longest', got {self.pad_to!r}")

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not rows:
            raise ValueError("cannot collate an empty list of rows")
        seq_lens = [np.asarray(r["seq_lens"], dtype=np.int64) for r in rows]
        ids = np.concatenate([np.asarray(r["input_ids"], dtype=np.int64) for r in rows])
        has_labels = [r.get("labels") is not None for r in rows]
        labels = None
        if any(has_labels):
            labels = np.concatenate([np.asarray(r["labels"] if r.get("labels") is not None else r["input_ids"],
                                                dtype=np.int64) for r in rows])
        fills = [int(s.sum()) for s in seq_lens]
        width = self.row_len if self.pad_to == "row" else max(fills)
        return build_batch(ids, labels, np.concatenate(seq_lens), np.array([len(s) for s in seq_lens]), width,
                           pad_id=self.pad_id, attn_mask=self.attn_mask)


def pack_to_tensors(docs: Sequence[Any], row_len: int, *, pad_id: int = 0, attn_mask: bool = False,
                    **pack_kwargs: Any) -> tuple[dict[str, Any], PackingPlan]:
    """Whole path in one call: documents (token lists, arrays or dicts) -> plan -> [rows, row_len] tensors.
    ``pack_kwargs`` go to ``pack_lengths`` (algorithm, overflow, max_docs_per_row)."""
    store = tokens_from_docs(docs)
    plan = pack_lengths(store.lengths, row_len, **pack_kwargs)
    ids, labels = store.gather(plan.doc_index, plan.doc_start, plan.length)
    batch = build_batch(ids, labels, plan.length, np.diff(plan.row_offsets), plan.row_len, pad_id=pad_id,
                        attn_mask=attn_mask)
    return batch, plan
