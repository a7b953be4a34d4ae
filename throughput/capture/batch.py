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
import sys
from dataclasses import dataclass
from typing import Any

_MAX_DEPTH = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchStats:
    samples: int | None = None
    tokens: int | None = None
    padding_tokens: int | None = None


_tensor_class: Any = None


def _is_tensor(x: Any) -> bool:
    global _tensor_class
    if _tensor_class is None:
        torch = sys.modules.get("torch")   # never import torch here: this module must stay cheap to import
        _tensor_class = torch.Tensor if torch is not None else False
    if _tensor_class and isinstance(x, _tensor_class):   # hot path: one isinstance per torch tensor
        return True
    return hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "numel")


def _collect_tensors(batch: Any, name: str, depth: int, out: list[tuple[str, Any]]) -> None:
    """Append (name, tensor) for every tensor in ``batch``, depth first. A recursive function filling one
    list instead of nested generators: this runs for every batch, inside the user's training loop."""
    if depth > _MAX_DEPTH:
        return
    if _is_tensor(batch):
        out.append((name, batch))
    elif isinstance(batch, dict):
        for k, v in batch.items():
            _collect_tensors(v, k if type(k) is str else str(k), depth + 1, out)
    elif isinstance(batch, (list, tuple)):
        for v in batch:   # list items have no name of their own ('input_ids' is only ever a key)
            _collect_tensors(v, "", depth + 1, out)
    elif dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        for f in dataclasses.fields(batch):
            _collect_tensors(getattr(batch, f.name), f.name, depth + 1, out)
    elif hasattr(batch, "data") and isinstance(getattr(batch, "data", None), dict):  # BatchEncoding
        _collect_tensors(batch.data, name, depth + 1, out)


_INTEGER_DTYPES: dict[Any, bool] = {}


def _is_integer(t: Any) -> bool:
    dtype = t.dtype
    known = _INTEGER_DTYPES.get(dtype)
    if known is None:
        known = _INTEGER_DTYPES[dtype] = not (dtype.is_floating_point or dtype.is_complex) and str(dtype) != "torch.bool"
    return known


def describe_batch(batch: Any, pad_id: int | None = None, count_padding: bool | None = None) -> BatchStats:
    """Samples, tokens and padding tokens of one batch (None where they cannot be read).

    ``count_padding=None`` counts padding only for CPU tensors (reading a CUDA tensor would sync).
    """
    if _is_tensor(batch):  # fast path: a bare tensor
        return BatchStats(samples=int(batch.shape[0]) if batch.dim() >= 1 else None,
                          tokens=int(batch.numel()) if batch.dim() == 2 and _is_integer(batch) else None)
    tensors: list[tuple[str, Any]] = []
    _collect_tensors(batch, "", 0, tensors)
    samples = ids = mask = first_int_2d = None
    for name, t in tensors:   # one pass: this runs once per batch inside the training loop
        dim = t.dim()
        if samples is None and dim >= 1:
            samples = int(t.shape[0])
        if name == "input_ids":
            ids = t if ids is None else ids
        elif name == "attention_mask":
            mask = t if mask is None else mask
        if first_int_2d is None and dim == 2 and _is_integer(t):
            first_int_2d = t
    if ids is None:
        ids = first_int_2d
    if ids is None or ids.dim() != 2:
        return BatchStats(samples=samples)
    tokens = int(ids.numel())
    padding = None
    if count_padding is None:
        count_padding = ids.device.type == "cpu"
    if count_padding:
        if mask is not None and tuple(mask.shape) == tuple(ids.shape):
            padding = int(tokens - int(mask.sum()))  # reads the mask: a host sync if it is on CUDA
        elif pad_id is not None:
            padding = int((ids == pad_id).sum())
    return BatchStats(samples=samples, tokens=tokens, padding_tokens=padding)
