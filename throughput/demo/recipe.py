"""The demo's training recipe (the contract of docs/training.md): a small GPT on the generated corpus.

The loader does real per-document work (tokenization, repeated ``TOKENIZER_WORK`` times to stand in
for a heavier tokenizer or augmentation), so data loading can be the bottleneck.

- ``packing=False`` (the naive recipe): one document per row, padded to ``CONTEXT``.
- ``packing=True``: rows planned by ``throughput.packing.pack_lengths`` from the documents' lengths
  (counted without tokenizing), then each row's documents are tokenized in the loader and laid out
  by ``PackingCollator`` with position resets and a block-diagonal causal mask, so no token attends
  across documents.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from throughput.demo.corpus import CorpusConfig, WordTokenizer, generate_corpus
from throughput.demo.model import GPT, GPTConfig

CONTEXT = 256
DOCUMENTS = 6000
VAL_DOCUMENTS = 200
TOKENIZER_WORK = 6
IGNORE = -100

config = {"steps": 60, "micro_batch_size": 8, "lr": 2e-3, "warmup_steps": 10, "eval_every": 0,
          "eval_batches": 4, "weight_decay": 0.1, "clip_grad_norm": 1.0, "amp": "fp32", "num_workers": 0,
          "log_every": 10}


@functools.lru_cache(maxsize=2)
def corpus(documents: int = DOCUMENTS + VAL_DOCUMENTS) -> tuple[tuple[str, ...], WordTokenizer]:
    docs = generate_corpus(CorpusConfig(documents=documents, max_tokens=CONTEXT, seed=0))
    return tuple(docs), WordTokenizer(list(docs))


class DocumentRows(Dataset[dict[str, Any]]):
    """One document per item, tokenized on access (the naive layout)."""

    def __init__(self, docs: tuple[str, ...], tokenizer: WordTokenizer) -> None:
        self.docs, self.tokenizer = docs, tokenizer

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.tokenizer.encode(self.docs[i], work=TOKENIZER_WORK)}


class PackedRows(Dataset[dict[str, Any]]):
    """Rows planned from lengths; each row's documents are tokenized on access (in loader workers)."""

    def __init__(self, docs: tuple[str, ...], tokenizer: WordTokenizer, row_len: int) -> None:
        from throughput.packing import pack_lengths

        self.docs, self.tokenizer = docs, tokenizer
        lengths = [len(d.split()) + 2 for d in docs]          # words + bos + eos, without tokenizing
        self.plan = pack_lengths(lengths, row_len, overflow="truncate")

    def __len__(self) -> int:
        return len(self.plan.row_offsets) - 1

    def __getitem__(self, i: int) -> dict[str, Any]:
        doc_index, doc_start, length = self.plan.row(i)
        pieces = []
        for d, start, n in zip(doc_index.tolist(), doc_start.tolist(), length.tolist()):
            ids = self.tokenizer.encode(self.docs[d], work=TOKENIZER_WORK)
            pieces.append(np.asarray(ids[start:start + n], dtype=np.int64))
        return {"input_ids": np.concatenate(pieces), "labels": None, "seq_lens": length.copy()}


def build_model(cfg: Any) -> torch.nn.Module:
    _, tokenizer = corpus()
    return GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context=CONTEXT))


def build_datasets(cfg: Any) -> tuple[Dataset[dict[str, Any]], Dataset[dict[str, Any]]]:
    docs, tokenizer = corpus()
    train_docs, val_docs = docs[:DOCUMENTS], docs[DOCUMENTS:]
    train: Dataset[dict[str, Any]]
    train = PackedRows(train_docs, tokenizer, CONTEXT) if getattr(cfg, "packing", False) else \
        DocumentRows(train_docs, tokenizer)
    return train, DocumentRows(val_docs, tokenizer)


def collate_fn(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Packed rows -> PackingCollator; single documents -> padded to CONTEXT (HF label convention)."""
    if "seq_lens" in samples[0]:
        from throughput.packing.collate import PackingCollator
        return PackingCollator(CONTEXT, attn_mask=True)(samples)
    ids = torch.zeros(len(samples), CONTEXT, dtype=torch.long)
    labels = torch.full((len(samples), CONTEXT), IGNORE, dtype=torch.long)
    for row, s in enumerate(samples):
        doc = torch.tensor(s["input_ids"][:CONTEXT], dtype=torch.long)
        ids[row, : len(doc)] = doc
        labels[row, 1: len(doc)] = doc[1:]
    return {"input_ids": ids, "labels": labels, "attention_mask": (labels != IGNORE) | (ids != 0)}


def loss_fn(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """Summed next-token loss over loss-bearing tokens, and their count (the loop normalizes)."""
    mask = batch.get("attn_mask")
    logits = model(batch["input_ids"], position_ids=batch.get("position_ids"),
                   attn_mask=mask[:, 0] if mask is not None else None)
    labels = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels.flatten(),
                                             ignore_index=IGNORE, reduction="sum")
    # Counted on the CPU copy of the labels: no device sync.
    return loss, int((labels != IGNORE).sum())
