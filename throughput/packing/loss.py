"""Loss normalization that does not depend on how a batch is cut into micro-batches or ranks.

The mean of per-micro-batch means weights a token by 1 / (tokens in its micro-batch): with packed or
variable-length data, (batch B, accumulation 1) and (batch B/k, accumulation k) then train different
objectives. The fix: sum the token losses of each micro-batch and divide by the number of loss-bearing
tokens in the whole accumulation window, counted over all data-parallel ranks::

    n = window_loss_tokens([mb["labels"] for mb in window])      # one all_reduce per window
    for mb in window:
        loss = normalized_loss(model(mb), mb["labels"], n)
        loss.backward()                                            # grads add up to the window's mean

Labels follow the HF convention (``labels[t]`` is predicted from tokens < t; -100 bears no loss).
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from throughput.packing.collate import IGNORE_INDEX


def loss_token_count(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Tokens that bear loss in one [batch, tokens] label tensor (after the shift), as an int64 tensor."""
    return (labels[..., 1:] != ignore_index).sum()


def window_loss_tokens(labels: Iterable[torch.Tensor], *, ignore_index: int = IGNORE_INDEX,
                       group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Loss-bearing tokens in a whole accumulation window, summed over the data-parallel ranks of
    ``group`` when torch.distributed is initialized. Returns an int64 tensor on the labels' device."""
    counts = [loss_token_count(x, ignore_index) for x in labels]
    if not counts:
        raise ValueError("the accumulation window has no micro-batches")
    total = torch.stack(counts).sum()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)   # one collective per window, not per micro-batch
    return total


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Sum (not mean) of next-token cross-entropy over loss-bearing tokens; logits [B, T, V], labels [B, T]."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on [batch, tokens]")
    return F.cross_entropy(logits[..., :-1, :].reshape(-1, logits.shape[-1]).float(),
                           labels[..., 1:].reshape(-1), ignore_index=ignore_index, reduction="sum")


def normalize_loss(loss_sum: torch.Tensor, window_tokens: torch.Tensor | int, *,
                   grads_averaged_over_ranks: bool = True, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """``loss_sum / window_tokens``; under torch.distributed with gradient averaging (DDP and FSDP
    average by default) also times the world size, so the averaged gradient is that of
    (sum over every rank and micro-batch) / (tokens in the global window). A window without any
    loss-bearing token gives 0, not NaN."""
    n = torch.as_tensor(window_tokens, device=loss_sum.device).clamp_min(1)
    scale = 1
    if grads_averaged_over_ranks and dist.is_available() and dist.is_initialized():
        scale = dist.get_world_size(group)
    return loss_sum * scale / n


def normalized_loss(logits: torch.Tensor, labels: torch.Tensor, window_tokens: torch.Tensor | int, *,
                    ignore_index: int = IGNORE_INDEX, grads_averaged_over_ranks: bool = True) -> torch.Tensor:
    """One micro-batch's share of the window loss: ``token_loss_sum`` normalized by ``window_tokens``."""
    return normalize_loss(token_loss_sum(logits, labels, ignore_index), window_tokens,
                          grads_averaged_over_ranks=grads_averaged_over_ranks)
