"""One optimizer update over a window of micro-batches, and one evaluation pass.

Gradient accumulation is normalized by the loss-bearing tokens of the whole window (all ranks), so
(batch B, accumulation 1) and (B/k, k) give the same gradient: each micro-batch contributes
``loss_sum_i / N_window`` rather than ``mean_i / k``, which would over-weight short micro-batches.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from throughput.capture.profiler import Profiler
from throughput.loop.data import BatchStream, count_loss_tokens
from throughput.loop.recipe import Recipe, RecipeError
from throughput.loop.runtime import Runtime, all_reduce_sum


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStats:
    """What one update measured (host floats, after the step's one sync)."""

    loss: float
    grad_norm: float
    clipped: bool
    tokens: int | None          # loss-bearing tokens in the window (all ranks), None if unknown
    samples: int


def to_device(batch: Any, device: torch.device, non_blocking: bool) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch


def train_step(model: nn.Module, raw_model: nn.Module, recipe: Recipe, stream: BatchStream, k: int,
               optimizer: Any, scheduler: Any, scaler: Any, clip: float, rt: Runtime,
               prof: Profiler) -> StepStats:
    """Fetch ``k`` micro-batches, forward/backward each, then one clipped optimizer update."""
    with prof.phase("data"):
        window = [stream.next() for _ in range(k)]
    counts = [count_loss_tokens(b, recipe.count_tokens) for b in window]
    known_counts = [c for c in counts if c is not None]
    known = len(known_counts) == len(counts)
    n_window = all_reduce_sum([float(sum(known_counts))], rt)[0] if known else 0.0
    if known and n_window <= 0:
        raise RecipeError("a training window has no loss-bearing tokens (all labels are -100): check collate_fn")
    loss_acc = torch.zeros((), dtype=torch.float64, device=rt.device)
    deferred_n = torch.zeros((), dtype=torch.float64, device=rt.device)
    for i, batch in enumerate(window):
        with prof.phase("h2d"):
            batch = to_device(batch, rt.device, non_blocking=rt.device.type == "cuda")
        last = i == k - 1
        sync_ctx = model.no_sync() if rt.world_size > 1 and not last else contextlib.nullcontext()  # type: ignore[operator]  # DDP's no_sync (nn.Module.__getattr__ is typed as Tensor | Module)
        with sync_ctx:
            with prof.phase("forward"), rt.autocast():
                out = recipe.loss_fn(model, batch)
                objective, report = _objective(out, counts[i], n_window, k, rt.world_size, deferred_n)
            with prof.phase("backward"):
                scaler.scale(objective).backward()
        loss_acc += report.detach().to(torch.float64)
    with prof.phase("optimizer"):
        scaler.unscale_(optimizer)
        if not known:
            denominator = _deferred_denominator(window, deferred_n, k, rt)
            if denominator is not None:
                for p in raw_model.parameters():
                    if p.grad is not None:
                        p.grad.mul_(rt.world_size / denominator)
        max_norm = clip if clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
    # Sync point: the one per step, for logging, clip counting and the non-finite check.
    loss_sum, norm = torch.stack([loss_acc, grad_norm.to(torch.float64)]).tolist()
    loss = _reported_loss(loss_sum, known, n_window, deferred_n, k, rt)
    samples = sum(_samples(b) for b in window) * rt.world_size
    return StepStats(loss=loss, grad_norm=norm, clipped=bool(clip > 0 and math.isfinite(norm) and norm > clip),
                     tokens=int(n_window) if known else None, samples=samples)


def _objective(out: Any, count: int | None, n_window: float, k: int, world: int,
               deferred_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tensor to backward, its contribution to the reported loss sum)."""
    if isinstance(out, tuple):
        if len(out) != 2:
            raise RecipeError("loss_fn must return (loss_sum, n_loss_tokens) or a scalar loss tensor, "
                              f"got a tuple of {len(out)}")
        loss_sum, n = out
        if count is not None:
            return loss_sum * (world / n_window), loss_sum
        deferred_n += torch.as_tensor(n, dtype=torch.float64, device=deferred_n.device)
        return loss_sum, loss_sum
    if not isinstance(out, torch.Tensor) or out.dim() != 0:
        raise RecipeError("loss_fn must return (loss_sum, n_loss_tokens) or a scalar loss tensor, "
                          f"got {type(out).__name__}" + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else ""))
    if count is not None:
        return out * (count * world / n_window), out * count
    return out / k, out / k


def _deferred_denominator(window: list[Any], deferred_n: torch.Tensor, k: int, rt: Runtime) -> float | None:
    """Tokens of the window when loss_fn returned (sum, n) but batches have no labels to count first."""
    total = float(deferred_n.item())  # Sync point: needed to rescale the summed gradients.
    if total == 0.0:
        return None  # scalar losses: already divided by k
    return all_reduce_sum([total], rt)[0]


def _reported_loss(loss_sum: float, known: bool, n_window: float, deferred_n: torch.Tensor, k: int,
                   rt: Runtime) -> float:
    if known:
        return all_reduce_sum([loss_sum], rt)[0] / n_window
    total_n = float(deferred_n.item())
    if total_n > 0:
        num, den = all_reduce_sum([loss_sum, total_n], rt)
        return num / den
    return all_reduce_sum([loss_sum], rt)[0] / rt.world_size


def _samples(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, dict):
        batch = next(iter(batch.values()), None)
        return _samples(batch) if batch is not None else 0
    if isinstance(batch, (list, tuple)) and batch:
        return _samples(batch[0])
    return 0


@torch.no_grad()
def evaluate(raw_model: nn.Module, recipe: Recipe, loader: Any, max_batches: int, rt: Runtime) -> float:
    """Token-weighted mean loss over the validation loader with the model in eval mode (then train)."""
    raw_model.eval()
    total, count = 0.0, 0.0
    try:
        for i, batch in enumerate(loader):
            if max_batches and i >= max_batches:
                break
            n = count_loss_tokens(batch, recipe.count_tokens)
            batch = to_device(batch, rt.device, non_blocking=rt.device.type == "cuda")
            with rt.autocast():
                out = recipe.loss_fn(raw_model, batch)
            if isinstance(out, tuple):
                total += float(out[0])  # Sync point: eval is rare; simplicity over overlap here.
                count += float(out[1])
            else:
                weight = float(n) if n is not None else 1.0
                total += float(out) * weight
                count += weight
    finally:
        raw_model.train()
    total, count = all_reduce_sum([total, count], rt)
    return total / count if count > 0 else math.nan
