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
from throughput.packing.tokens import TokenStore, copy_runs, tokens_from_docs

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
                src_start: IntArray | None = None, pad_id: int = 0, attn_mask: bool = False) -> dict[str, Any]:
    """Lay out documents in a [rows, width] batch: ``docs_per_row`` documents per row, ``seq_lens``
    tokens each, document ``p``'s tokens being ``ids[src_start[p]:src_start[p] + seq_lens[p]]``
    (default: ``ids`` holds the documents concatenated in row order). ``labels`` (or None: the
    ids) share the layout of ``ids``. No Python loop over tokens."""
    n_rows = len(docs_per_row)
    doc_dest, fill, first = _doc_starts(seq_lens, docs_per_row, width)
    src = first if src_start is None else src_start
    input_ids = copy_runs(ids, src, seq_lens, doc_dest, n_rows * width)
    out_labels = input_ids.copy() if labels is None else copy_runs(labels, src, seq_lens, doc_dest, n_rows * width)
    tails = np.flatnonzero(fill < width)
    for r, f in zip(tails.tolist(), fill[tails].tolist()):       # only rows that are not full
        input_ids[r * width + f:(r + 1) * width] = pad_id
        out_labels[r * width + f:(r + 1) * width] = IGNORE_INDEX
    out_labels[doc_dest] = IGNORE_INDEX                            # nothing predicts a document's first token
    seg_dest, seg_len = _segments(doc_dest, seq_lens, tails * width + fill[tails], width - fill[tails])
    counting = np.arange(width, dtype=np.int64)                  # positions restart at 0 in every segment
    positions = copy_runs(counting, np.zeros_like(seg_len), seg_len, seg_dest, n_rows * width)
    seqs = seg_len[seg_len > 0]                                  # batch order: what cu_seqlens describes
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
        starts = np.zeros(n_rows * width, dtype=np.int64)
        starts[seg_dest] = 1
        segments = np.cumsum(starts).reshape(n_rows, width)        # a new id at every segment start
        batch["attn_mask"] = block_causal_mask(torch.from_numpy(segments))
    return batch


def _doc_starts(seq_lens: IntArray, docs_per_row: IntArray, width: int) -> tuple[IntArray, IntArray, IntArray]:
    """(start of each document in the flattened batch, tokens per row, start of each document when
    the documents are concatenated). ValueError if a row is wider than ``width``."""
    n_rows = len(docs_per_row)
    doc_row = np.repeat(np.arange(n_rows, dtype=np.int64), docs_per_row)
    fill = np.bincount(doc_row, weights=seq_lens, minlength=n_rows).astype(np.int64)
    if n_rows and fill.max() > width:
        raise ValueError(f"a row holds {fill.max()} tokens, more than the width {width}")
    first = np.cumsum(seq_lens) - seq_lens
    row_first = np.cumsum(fill) - fill                             # concatenated start of each row
    return doc_row * width + first - row_first[doc_row], fill, first


def _segments(doc_dest: IntArray, doc_len: IntArray, tail_dest: IntArray,
              tail_len: IntArray) -> tuple[IntArray, IntArray]:
    """Every document and every padding tail as (start in the flattened batch, length), in batch order."""
    dest = np.concatenate([doc_dest, tail_dest])
    length = np.concatenate([doc_len, tail_len])
    order = np.argsort(dest, kind="stable")
    return dest[order], length[order]


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


def pack_to_tensors(docs: Sequence[Any] | TokenStore, row_len: int, *, pad_id: int = 0, attn_mask: bool = False,
                    **pack_kwargs: Any) -> tuple[dict[str, Any], PackingPlan]:
    """Whole path in one call: documents (token lists, arrays, dicts, or a ``TokenStore`` such as
    ``tokens_from_flat`` over an Arrow column) -> plan -> [rows, row_len] tensors.
    ``pack_kwargs`` go to ``pack_lengths`` (algorithm, overflow, max_docs_per_row)."""
    store = docs if isinstance(docs, TokenStore) else tokens_from_docs(docs)
    plan = pack_lengths(store.lengths, row_len, **pack_kwargs)
    batch = build_batch(store.ids, store.labels, plan.length, np.diff(plan.row_offsets), plan.row_len,
                        src_start=store.offsets[plan.doc_index] + plan.doc_start, pad_id=pad_id, attn_mask=attn_mask)
    return batch, plan
