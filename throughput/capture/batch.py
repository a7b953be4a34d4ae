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


class BatchDescriber:
    """``describe_batch`` that remembers where the counts sit in a flat batch.

    A training loop yields batches of one structure, typically a tuple ``(x, y)`` or a dict of
    tensors. The first batch of a structure is walked in full and the positions of the samples tensor,
    the token tensor and the attention mask are remembered; later batches of the same type, length (and
    keys) are read at those positions only. Inside a training step, where the walk's objects are out of
    the CPU caches, that is about 2 us instead of 8. Counts are still read from every batch, so a smaller
    last batch or a new sequence length is counted exactly. Nested batches always take the full walk.

    Limit: if an element that was not a tensor becomes one *before* the remembered positions (a ``None``
    field that is sometimes a tensor), the remembered roles are used until the type, length or keys
    of the batch change.
    """

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo: _Roles | None = None

    def __call__(self, batch: Any, pad_id: int | None = None) -> BatchStats:
        memo = self._memo
        if (memo is not None and type(batch) is memo.kind and len(batch) == memo.length
                and (memo.keys is None or batch.keys() == memo.keys)):
            stats = memo.read(batch, pad_id)
            if stats is not None:
                return stats
        self._memo = _Roles.of(batch)
        return describe_batch(batch, pad_id)


class _Roles:
    """Where samples, token ids and the attention mask sit in a flat tuple/list/dict batch."""

    __slots__ = ("kind", "length", "keys", "samples_at", "ids_at", "mask_at", "last")

    def __init__(self, kind: type, length: int, keys: Any, samples_at: Any, ids_at: Any, mask_at: Any) -> None:
        self.kind, self.length, self.keys = kind, length, keys
        self.samples_at, self.ids_at, self.mask_at = samples_at, ids_at, mask_at
        self.last = BatchStats()   # returned again when a batch has the same counts (no new record)

    @staticmethod
    def of(batch: Any) -> "_Roles | None":
        """The roles of ``batch`` by the rules of ``describe_batch``; None if it is not flat."""
        kind = type(batch)
        if kind is dict:
            items = list(batch.items())
        elif kind is tuple or kind is list:
            items = list(enumerate(batch))
        else:
            return None
        samples_at = ids_at = mask_at = first_int_2d_at = None
        for at, value in items:
            if not _is_tensor(value):
                if isinstance(value, (dict, list, tuple)) or dataclasses.is_dataclass(value) or hasattr(value, "data"):
                    return None   # nested: the full walk decides
                continue
            dim = value.dim()
            if samples_at is None and dim >= 1:
                samples_at = at
            if kind is dict and str(at) == "input_ids":
                ids_at = at if ids_at is None else ids_at
            elif kind is dict and str(at) == "attention_mask":
                mask_at = at if mask_at is None else mask_at
            if first_int_2d_at is None and dim == 2 and _is_integer(value):
                first_int_2d_at = at
        if samples_at is None:
            return None
        return _Roles(kind, len(batch), set(batch.keys()) if kind is dict else None, samples_at,
                      ids_at if ids_at is not None else first_int_2d_at, mask_at)

    def read(self, batch: Any, pad_id: int | None) -> BatchStats | None:
        """Counts read at the remembered positions; None when the batch does not fit them."""
        first = batch[self.samples_at]
        if not _is_tensor(first) or first.dim() < 1:
            return None
        samples = int(first.shape[0])
        if self.ids_at is None:
            return self._stats(samples, None, None)
        ids = batch[self.ids_at]
        if not _is_tensor(ids) or ids.dim() != 2:
            return None
        tokens = int(ids.numel())
        padding = None
        if ids.device.type == "cpu":
            mask = batch[self.mask_at] if self.mask_at is not None else None
            if mask is not None and _is_tensor(mask) and tuple(mask.shape) == tuple(ids.shape):
                padding = int(tokens - int(mask.sum()))
            elif pad_id is not None:
                padding = int((ids == pad_id).sum())
        return self._stats(samples, tokens, padding)

    def _stats(self, samples: int, tokens: int | None, padding: int | None) -> BatchStats:
        last = self.last
        if last.samples != samples or last.tokens != tokens or last.padding_tokens != padding:
            last = self.last = BatchStats(samples=samples, tokens=tokens, padding_tokens=padding)
        return last
