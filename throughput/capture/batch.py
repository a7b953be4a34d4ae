"""Read samples, tokens and padding from a batch without knowing its type.

Rules, in order:
- samples: the first dimension of the first tensor found (tensors, tuples/lists, dicts, dataclasses,
  objects with a ``__dict__`` such as HF ``BatchEncoding``).
- tokens: an integer tensor of rank 2 named ``input_ids`` (else the first integer rank-2 tensor):
  its number of elements.
- padding: ``attention_mask`` zeros when there is a mask, else elements equal to ``pad_id`` if given.
Counting padding reads a tensor: on CUDA that is a sync, so the caller decides when (see ``Profiler``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

_MAX_DEPTH = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchStats:
    samples: int | None = None
    tokens: int | None = None
    padding_tokens: int | None = None


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "numel")


def _named_tensors(batch: Any, name: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    if depth > _MAX_DEPTH:
        return
    if _is_tensor(batch):
        yield name, batch
    elif isinstance(batch, dict):
        for k, v in batch.items():
            yield from _named_tensors(v, str(k), depth + 1)
    elif isinstance(batch, (list, tuple)):
        for i, v in enumerate(batch):
            yield from _named_tensors(v, f"{name}[{i}]", depth + 1)
    elif dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        for f in dataclasses.fields(batch):
            yield from _named_tensors(getattr(batch, f.name), f.name, depth + 1)
    elif hasattr(batch, "data") and isinstance(getattr(batch, "data", None), dict):  # BatchEncoding
        yield from _named_tensors(batch.data, name, depth + 1)


def _is_integer(t: Any) -> bool:
    return not (t.dtype.is_floating_point or t.dtype.is_complex) and str(t.dtype) != "torch.bool"


def describe_batch(batch: Any, pad_id: int | None = None, count_padding: bool | None = None) -> BatchStats:
    """Samples, tokens and padding tokens of one batch (None where they cannot be read).

    ``count_padding=None`` counts padding only for CPU tensors (reading a CUDA tensor would sync).
    """
    if _is_tensor(batch):  # fast path: a bare tensor
        return BatchStats(samples=int(batch.shape[0]) if batch.dim() >= 1 else None,
                          tokens=int(batch.numel()) if batch.dim() == 2 and _is_integer(batch) else None)
    tensors = list(_named_tensors(batch))
    if not tensors:
        return BatchStats()
    samples = None
    for _, t in tensors:
        if t.dim() >= 1:
            samples = int(t.shape[0])
            break
    ids = next((t for n, t in tensors if n == "input_ids"), None)
    if ids is None:
        ids = next((t for _, t in tensors if t.dim() == 2 and _is_integer(t)), None)
    if ids is None or ids.dim() != 2:
        return BatchStats(samples=samples)
    tokens = int(ids.numel())
    padding = None
    if count_padding is None:
        count_padding = ids.device.type == "cpu"
    if count_padding:
        mask = next((t for n, t in tensors if n == "attention_mask"), None)
        if mask is not None and tuple(mask.shape) == tuple(ids.shape):
            padding = int(tokens - int(mask.sum()))  # reads the mask: a host sync if it is on CUDA
        elif pad_id is not None:
            padding = int((ids == pad_id).sum())
    return BatchStats(samples=samples, tokens=tokens, padding_tokens=padding)
