"""A complete ``throughput train`` recipe: a small GPT on a generated, variable-length corpus (offline).

Run it::

    throughput train examples/recipes/tiny_gpt.py --out runs/tiny
    throughput train examples/recipes/tiny_gpt.py --set lr=3e-3 --set steps=400 --out runs/tiny-lr
    throughput ablate examples/recipes/tiny_gpt.py --vary schedule=cosine,constant --set steps=100

The recipe contract (docs/training.md):

- ``build_model(config)``     -> torch.nn.Module (built after the loop seeds every RNG with config.seed)
- ``build_datasets(config)``  -> (train, val): map-style datasets here (exact resume); val may be None
- ``loss_fn(model, batch)``   -> (loss_sum, n_loss_tokens): the loop divides by the loss-bearing tokens
                                 of the whole accumulation window, so padding and ragged micro-batches
                                 are weighted correctly
- ``collate_fn(samples)``     -> batch (optional); here: pad to the longest row, labels -100 on padding,
                                 or, with ``packing=true``, throughput.packing's collator (several rows
                                 per CONTEXT-long row, positions restarting per document, a block-causal
                                 attention mask so no token sees another document)
- ``config``                  -> this recipe's defaults (a plan and --set override them)

Labels follow the Hugging Face convention in both modes: ``labels[t]`` is the token at ``t`` (-100 on
padding and on each document's first token), and the loss compares ``logits[:, :-1]`` with
``labels[:, 1:]``; the loop counts loss-bearing tokens as ``labels != -100``.

The corpus: rows of 8..CONTEXT tokens from a noisy "count up by a per-row stride" grammar, so a model can
learn it (loss falls well below the uniform level ln(VOCAB)) but not perfectly (5% of tokens are noise).
Sizes are module constants so tests can shrink them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

VOCAB = 64
CONTEXT = 32
D_MODEL = 64
LAYERS = 2
HEADS = 4
DROPOUT = 0.1
N_TRAIN = 4096
N_VAL = 512
CORPUS_SEED = 1234
IGNORE = -100

config = {"steps": 300, "micro_batch_size": 16, "lr": 3e-3, "warmup_steps": 30, "eval_every": 50,
          "eval_batches": 8, "weight_decay": 0.1, "ckpt_every_steps": 100}


class Block(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                             dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


class TinyGPT(nn.Module):
    """Token + position embeddings, pre-norm blocks, an output layer tied to the token embedding."""

    def __init__(self, vocab: int, context: int, d: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight  # tied: one table, no weight decay (it is an embedding)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        # GPT-2 style: small weights, so initial logits are near uniform (loss ~ ln VOCAB).
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor, position_ids: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``position_ids`` and the [B, 1, T, T] ``attn_mask`` come with packed rows."""
        pos = position_ids if position_ids is not None else torch.arange(ids.shape[1], device=ids.device)
        x = self.tok(ids) + self.pos(pos)
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.head(self.ln(x))


class Rows(torch.utils.data.Dataset):
    """Variable-length token rows, generated once from a private seed (not the global RNG)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(8, CONTEXT + 1, (n,), generator=g)
        starts = torch.randint(0, VOCAB, (n,), generator=g)
        strides = torch.randint(1, 4, (n,), generator=g)
        self.rows = []
        for length, start, stride in zip(lengths.tolist(), starts.tolist(), strides.tolist()):
            row = (start + stride * torch.arange(length)) % VOCAB
            noise = torch.rand(length, generator=g) < 0.05
            row[noise] = torch.randint(0, VOCAB, (int(noise.sum()),), generator=g)
            self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.rows[i]


def collate_fn(rows: list[Any]) -> dict[str, torch.Tensor]:
    """Padded: pad to the longest row, labels = ids with -100 on padding and on the first token.
    Packed rows (dicts from throughput.packing.PackedDataset) go to its PackingCollator."""
    if isinstance(rows[0], dict):
        from throughput.packing import PackingCollator

        return PackingCollator(CONTEXT, attn_mask=True)(rows)
    t = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), t, dtype=torch.long)
    labels = torch.full((len(rows), t), IGNORE, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        labels[i, 1:len(r)] = r[1:]
    return {"input_ids": ids, "labels": labels}


def build_model(cfg: Any) -> nn.Module:
    return TinyGPT(VOCAB, CONTEXT, D_MODEL, LAYERS, HEADS, DROPOUT)


def build_datasets(cfg: Any) -> tuple[Any, Any]:
    train, val = Rows(N_TRAIN, CORPUS_SEED), Rows(N_VAL, CORPUS_SEED + 1)
    if getattr(cfg, "packing", False):
        from throughput.packing import PackedDataset

        return (PackedDataset([r.tolist() for r in train.rows], CONTEXT),
                PackedDataset([r.tolist() for r in val.rows], CONTEXT))
    return train, val


def loss_fn(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    mask = batch.get("attn_mask")
    logits = model(batch["input_ids"], batch.get("position_ids"), mask)
    labels = batch["labels"][:, 1:]  # position t predicts the token at t + 1
    loss_sum = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE,
                               reduction="sum")
    return loss_sum, (labels != IGNORE).sum()


CHANCE_LOSS = math.log(VOCAB)  # the loss of a uniform guess: a run that stays here learned nothing
