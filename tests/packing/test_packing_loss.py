"""Accumulation invariance: (batch B, accumulation 1) and (B/k, accumulation k) give the same gradients
(fp32, 1e-6 relative) with the window-normalized loss, packed and padded, and across 2 gloo ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from packing_tiny_lm import TinyLM, causal_mask
from torchrun_ranks import run_two_ranks

from throughput.packing import (loss_token_count, normalized_loss, pack_to_tensors, token_loss_sum,
                                window_loss_tokens)

Batch = dict[str, torch.Tensor]



def docs(seed: int = 0, n: int = 24) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 97, int(m)).tolist() for m in rng.integers(2, 40, n)]


def packed_rows(rows: int = 8) -> Batch:
    batch, plan = pack_to_tensors(docs(), 48, attn_mask=True)
    assert plan.num_rows >= rows
    return {k: batch[k][:rows] for k in ("input_ids", "labels", "position_ids", "attn_mask")}


def padded(ds: list[list[int]]) -> Batch:
    """Dynamic padding to the longest document; padding bears no loss and sits after the tokens."""
    t = max(map(len, ds))
    ids = torch.zeros(len(ds), t, dtype=torch.long)
    labels = torch.full((len(ds), t), -100)
    for i, d in enumerate(ds):
        ids[i, :len(d)] = labels[i, :len(d)] = torch.tensor(d)
    return {"input_ids": ids, "labels": labels, "position_ids": torch.arange(t).expand(len(ds), t),
            "attn_mask": causal_mask(len(ds), t)}


def split_packed(batch: Batch, k: int) -> list[Batch]:
    return [{key: v.chunk(k)[i] for key, v in batch.items()} for i in range(k)]


def grads(micro: list[Batch], *, window_norm: bool = True) -> torch.Tensor:
    torch.manual_seed(0)
    model = TinyLM()
    n = window_loss_tokens([mb["labels"] for mb in micro])
    for mb in micro:
        logits = model(mb["input_ids"], mb["position_ids"], mb["attn_mask"])
        if window_norm:
            loss = normalized_loss(logits, mb["labels"], n)
        else:                                          # the common mistake: mean per micro-batch, / k
            loss = token_loss_sum(logits, mb["labels"]) / loss_token_count(mb["labels"]) / len(micro)
        loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / a.norm()).item()


@pytest.mark.parametrize("k", [2, 4])
def test_packed_accumulation_invariance(k: int) -> None:
    batch = packed_rows(8)
    full = grads([batch])
    assert rel(full, grads(split_packed(batch, k))) < 1e-6
    assert rel(full, grads(split_packed(batch, k), window_norm=False)) > 1e-3   # the mistake shows


@pytest.mark.parametrize("k", [2, 4])
def test_padded_accumulation_invariance(k: int) -> None:
    ds = docs(1, 8)
    full = grads([padded(ds)])
    micro = [padded(ds[i:i + len(ds) // k]) for i in range(0, len(ds), len(ds) // k)]
    assert rel(full, grads(micro)) < 1e-6
    assert rel(full, grads(micro, window_norm=False)) > 1e-3


def test_window_count_and_empty_window() -> None:
    labels = torch.tensor([[-100, 5, 6, -100], [-100, -100, 7, 8]])
    # after the shift: [5, 6, -100] -> 2 and [-100, 7, 8] -> 2
    assert loss_token_count(labels).item() == 4
    assert window_loss_tokens([labels, labels[:1]]).item() == 4 + 2
    with pytest.raises(ValueError, match="no micro-batches"):
        window_loss_tokens([])
    zero = normalized_loss(torch.zeros(1, 3, 5, requires_grad=True), torch.full((1, 3), -100), 0)
    assert zero.item() == 0.0


def test_two_gloo_ranks_match_one_process(tmp_path: Path) -> None:
    """Real torchrun, 2 ranks over gloo: accumulation 2 on each rank equals one process, whole batch."""
    out = str(tmp_path / "grads.pt")
    run_two_ranks(Path(__file__).with_name("ddp_ranks.py"), out, cwd=tmp_path, timeout_s=120)
    assert rel(grads([packed_rows(8)]), torch.load(out)) < 1e-6
