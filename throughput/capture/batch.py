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

import contextlib
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


def outside_dispatch_modes() -> Any:
    """A context for our own reads of the script's tensors (a loss's ``item()``, a mask's ``sum()``): the
    script's TorchDispatchModes (an op counter, a logging mode) do not see them, as they would not in a
    plain run. A shared do-nothing context when no mode is active (one C call: the usual case)."""
    if not dispatch_modes_active():
        return _NO_CONTEXT
    from torch.utils._python_dispatch import _disable_current_modes
    return _disable_current_modes()


def dispatch_modes_active() -> bool:
    """Is a TorchDispatchMode active in this thread? (False before torch is imported.) Hot paths read
    ``_dispatch_depth`` (bound with ``_tensor_class``) first and call this while it is unset."""
    if _dispatch_depth is None:
        tensor_class()
    return _dispatch_depth is not None and bool(_dispatch_depth())


_NO_CONTEXT = contextlib.nullcontext()
_dispatch_depth: Any = None   # torch._C._len_torch_dispatch_stack, bound by tensor_class()


def tensor_class() -> Any:
    """``torch.Tensor`` once torch is imported, else None. Never imports torch (this module must stay
    cheap to import); hot paths read the module's ``_tensor_class`` first and call this while it is unset.
    Binds ``_dispatch_depth`` with it (the one lazy lookup of torch here)."""
    global _tensor_class, _dispatch_depth
    if _tensor_class is None:
        torch = sys.modules.get("torch")
        if torch is not None:
            _tensor_class, _dispatch_depth = torch.Tensor, torch._C._len_torch_dispatch_stack
    return _tensor_class


def _is_tensor(x: Any) -> bool:
    """A torch tensor, or an object whose class has a tensor's ``shape``, ``dtype``, ``numel`` and ``dim``.
    Asked of the class, not the instance: a script's options object whose ``__getattr__`` answers every
    name (with None, or a KeyError) is not a tensor (it was, and reading its ``dim()`` crashed the run)."""
    cls = _tensor_class or tensor_class()
    if cls is not None and isinstance(x, cls):   # hot path: one isinstance per torch tensor
        return True
    kind = type(x)
    return hasattr(kind, "shape") and hasattr(kind, "dtype") and hasattr(kind, "numel") and hasattr(kind, "dim")


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
        tensor = _tensor_class if depth < _MAX_DEPTH else None   # set by _is_tensor(batch) above
        for v in batch:   # list items have no name of their own ('input_ids' is only ever a key)
            if tensor and isinstance(v, tensor):   # the common (inputs, targets): no call per tensor
                out.append(("", v))
            else:
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
    Never raises: a batch it cannot read (an object that only looks like a tensor, a tensor subclass
    whose methods fail) is unknown, not the script's crash. A tensor subclass's ``__torch_function__``
    does not see these reads (``shape``, ``dim()``), as it would not in a plain run.
    """
    try:
        with _outside_torch_functions():
            return _describe(batch, pad_id, count_padding)
    except Exception:  # noqa: BLE001 - our read of the script's objects must not end the script
        return _NOTHING


def _outside_torch_functions() -> Any:
    """torch's ``DisableTorchFunctionSubclass`` once torch is imported (a do-nothing context before)."""
    torch = sys.modules.get("torch")
    return torch._C.DisableTorchFunctionSubclass() if torch is not None else _NO_CONTEXT


def _describe(batch: Any, pad_id: int | None, count_padding: bool | None) -> BatchStats:
    if _is_tensor(batch):  # fast path: a bare tensor
        return BatchStats(samples=int(batch.shape[0]) if batch.dim() >= 1 else None,
                          tokens=int(batch.numel()) if batch.dim() == 2 and _is_integer(batch) else None)
    tensors: list[tuple[str, Any]] = []
    _collect_tensors(batch, "", 0, tensors)
    samples_i, ids_i, mask_i = _find_roles(tensors)
    samples, tokens, padding = _counts(None if samples_i is None else tensors[samples_i][1],
                                       None if ids_i is None else tensors[ids_i][1],
                                       None if mask_i is None else tensors[mask_i][1], pad_id, count_padding)
    return BatchStats(samples=samples, tokens=tokens, padding_tokens=padding)


def _find_roles(tensors: list[tuple[str, Any]]) -> tuple[int | None, int | None, int | None]:
    """Indices in ``tensors`` of the samples tensor (the first with a dimension), the token ids (the one
    named ``input_ids``, else the first integer matrix) and the attention mask (named ``attention_mask``)."""
    samples_i = ids_i = mask_i = first_int_2d_i = None
    for i, (name, t) in enumerate(tensors):   # one pass: this runs once per batch inside the training loop
        dim = t.dim()
        if samples_i is None and dim >= 1:
            samples_i = i
        if name == "input_ids":
            ids_i = i if ids_i is None else ids_i
        elif name == "attention_mask":
            mask_i = i if mask_i is None else mask_i
        if first_int_2d_i is None and dim == 2 and _is_integer(t):
            first_int_2d_i = i
    return samples_i, (ids_i if ids_i is not None else first_int_2d_i), mask_i


def _counts(first: Any, ids: Any, mask: Any, pad_id: int | None,
            count_padding: bool | None) -> tuple[int | None, int | None, int | None]:
    """(samples, tokens, padding) from the role tensors (None where a role is missing)."""
    samples = int(first.shape[0]) if first is not None else None
    if ids is None or ids.dim() != 2:
        return samples, None, None
    tokens = int(ids.numel())
    padding = None
    if count_padding is None:
        count_padding = ids.device.type == "cpu"
    if count_padding:
        with outside_dispatch_modes():
            if mask is not None and tuple(mask.shape) == tuple(ids.shape):
                padding = int(tokens - int(mask.sum()))  # reads the mask: a host sync if it is on CUDA
            elif pad_id is not None:
                padding = int((ids == pad_id).sum())
    return samples, tokens, padding


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

    def describe(self, batch: Any, pad_id: int | None = None) -> BatchStats:
        """The batch's counts. Hot paths hold this bound method, not the instance: calling an instance goes
        through its type's ``__call__`` slot (a method lookup and an argument copy, ~60 instruction-cache
        misses a batch inside a training step, counted by callgrind)."""
        memo = self._memo
        if memo is not None and type(batch) is memo.kind:
            if memo.ids_at is None and memo.keys is None and len(batch) == memo.length:
                # The usual (inputs, targets), samples only, inline: one binding call (``shape``) and no
                # Python frame beyond this one. Inside a training step each costs microseconds.
                first = batch[memo.samples_at]
                if type(first) is _tensor_class:
                    shape = first.shape
                    if shape:
                        last = memo.last   # tokens and padding are None in every record of such roles
                        if last.samples == shape[0]:
                            return last
            if len(batch) == memo.length and (memo.keys is None or batch.keys() == memo.keys):
                stats = memo.read(batch, pad_id)
                if stats is not None:
                    return stats
        elif type(batch) in _SCALARS:   # an index or a number: nothing to count, no walk
            return _NOTHING
        try:
            with _outside_torch_functions():
                memo = self._memo = _Roles.of(batch)
                stats = memo.read(batch, pad_id) if memo is not None else None
        except Exception:  # noqa: BLE001 - as describe_batch: unreadable is unknown, not the script's crash
            self._memo, stats = None, None
        return stats if stats is not None else describe_batch(batch, pad_id)

    __call__ = describe


_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})
_NOTHING = BatchStats()


class _Roles:
    """Where samples, token ids and the attention mask sit in a flat tuple/list/dict batch."""

    __slots__ = ("kind", "length", "keys", "samples_at", "ids_at", "mask_at", "last")

    def __init__(self, kind: type, length: int, keys: Any, samples_at: Any, ids_at: Any, mask_at: Any) -> None:
        self.kind: Any = kind     # Any, not type: `type(batch) is kind` must not narrow the batch
        self.length, self.keys = length, keys
        self.samples_at, self.ids_at, self.mask_at = samples_at, ids_at, mask_at
        self.last = BatchStats()   # returned again when a batch has the same counts (no new record)

    @staticmethod
    def of(batch: Any) -> "_Roles | None":
        """The roles of ``batch`` by the rules of ``describe_batch``; None if it is not flat."""
        kind = type(batch)
        if kind is dict:
            items = list(batch.items())
        elif kind is tuple or kind is list:
            items = [("", v) for v in batch]
        else:
            return None
        tensors: list[tuple[str, Any]] = []
        positions: list[Any] = []
        for at, (key, value) in enumerate(items):
            if _is_tensor(value):
                tensors.append((key if type(key) is str else str(key), value))
                positions.append(key if kind is dict else at)
            elif isinstance(value, (dict, list, tuple)) or dataclasses.is_dataclass(value) or hasattr(value, "data"):
                return None   # nested: the full walk decides
        samples_i, ids_i, mask_i = _find_roles(tensors)
        if samples_i is None:
            return None
        return _Roles(kind, len(batch), set(batch.keys()) if kind is dict else None, positions[samples_i],
                      None if ids_i is None else positions[ids_i], None if mask_i is None else positions[mask_i])

    def read(self, batch: Any, pad_id: int | None) -> BatchStats | None:
        """Counts read at the remembered positions; None when the batch does not fit them."""
        first = batch[self.samples_at]
        if not _is_tensor(first) or first.dim() < 1:
            return None
        ids = None if self.ids_at is None else batch[self.ids_at]
        if ids is not None and (not _is_tensor(ids) or ids.dim() != 2):
            return None
        mask = None if self.mask_at is None else batch[self.mask_at]
        samples, tokens, padding = _counts(first, ids, mask if _is_tensor(mask) else None, pad_id, None)
        last = self.last   # the same record again while the counts repeat: no allocation
        if last.samples != samples or last.tokens != tokens or last.padding_tokens != padding:
            last = self.last = BatchStats(samples=samples, tokens=tokens, padding_tokens=padding)
        return last


#: The walk that finds a batch's tensors, for the loader hook's on-CPU check.
collect_tensors = _collect_tensors
