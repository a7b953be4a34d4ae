"""DataLoader instrumentation: the ``data`` phase, batch contents, loader settings and overrides.

``_BaseDataLoaderIter.__next__`` is the one place every loader's batches pass through (single- and
multi-process, map-style and iterable datasets, infinite samplers, loaders built inside libraries).
"""

from __future__ import annotations

import inspect
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.utils.data.dataloader as _dl

from throughput.capture.batch import describe_batch
from throughput.capture.digests import DigestRecorder, digests_wanted
from throughput.capture.overrides import apply_loader_overrides
from throughput.capture.patching import Patcher, mark

if TYPE_CHECKING:
    from throughput.capture.hooks import Instrumentation

_CTX = "_throughput_loader_ctx"
_get_ident = __import__("threading").get_ident


class LoaderPatches:
    """Patches DataLoader construction and iteration for one ``Instrumentation``."""

    def __init__(self, inst: "Instrumentation") -> None:
        self._inst = inst
        self.applied: Counter[str] = Counter()   # override key -> loaders it was applied to
        self.loaders_built = 0
        self._ctx_recorded: set[int] = set()
        n = digests_wanted()   # the advisor's worker-split check only (capture/digests.py)
        self.digests = DigestRecorder(n, lambda **d: inst.prof.event("context", "batch digests", **d)) if n else None

    def install(self, p: Patcher) -> None:
        p.set(_dl.DataLoader, "__init__", mark(self._wrap_init(_dl.DataLoader.__init__)))
        p.set(_dl.DataLoader, "_get_iterator", mark(self._wrap_get_iterator(_dl.DataLoader._get_iterator)))
        p.set(_dl._BaseDataLoaderIter, "__next__", mark(self._wrap_next(_dl._BaseDataLoaderIter.__next__)))

    def _wrap_init(self, orig: Callable[..., None]) -> Callable[..., None]:
        names = list(inspect.signature(orig).parameters)[1:]  # after self
        overrides = self._inst.overrides

        def __init__(loader: Any, *args: Any, **kwargs: Any) -> None:
            if self._inst.mine():
                self.loaders_built += 1
                if overrides.loader_changes():
                    kwargs = {**dict(zip(names, args)), **kwargs}
                    args = ()
                    kwargs, applied = apply_loader_overrides(kwargs, overrides)
                    self.applied.update(applied)
            orig(loader, *args, **kwargs)
        return __init__

    def _wrap_get_iterator(self, orig: Callable[[Any], Any]) -> Callable[[Any], Any]:
        inst = self._inst

        def _get_iterator(loader: Any) -> Any:
            # Starting an epoch (worker processes start here unless persistent) is waiting for data.
            frame = inst.prof._open("data" if torch.is_grad_enabled() else "eval") if inst.mine() else None
            try:
                it = orig(loader)
            finally:
                inst.prof._close(frame)
            try:
                it.__dict__[_CTX] = (id(loader), loader_settings(loader))
            except Exception:  # an exotic iterator without __dict__: settings are optional
                pass
            return it
        return _get_iterator

    def _wrap_next(self, orig: Callable[[Any], Any]) -> Callable[[Any], Any]:
        inst = self._inst
        prof = inst.prof

        def __next__(it: Any) -> Any:
            if not inst.enabled or _get_ident() != inst._owner:
                return orig(it)
            training = torch.is_grad_enabled()  # evaluation loops fetch under no_grad
            frame = prof._open("data" if training else "eval")
            try:
                batch = orig(it)
            finally:
                prof._close(frame)
            if training:
                inst.pending_batches.append(describe_batch(batch, prof.pad_id, count_padding=_on_cpu(batch)))
                if self.digests is not None:
                    self.digests.add(batch)
                ctx = it.__dict__.pop(_CTX, None)
                if ctx is not None and ctx[0] not in self._ctx_recorded:
                    self._ctx_recorded.add(ctx[0])
                    prof.event("context", "training DataLoader settings", **ctx[1])
            return batch
        return __next__


def loader_settings(loader: Any) -> dict[str, int | bool | str]:
    """The DataLoader options that matter for input speed (None values left out)."""
    values = {
        "num_workers": loader.num_workers,
        "pin_memory": bool(loader.pin_memory),
        "batch_size": loader.batch_size,
        "persistent_workers": bool(loader.persistent_workers),
        "prefetch_factor": loader.prefetch_factor,
        "drop_last": bool(loader.drop_last),
        "dataset": "iterable" if isinstance(loader.dataset, torch.utils.data.IterableDataset) else "map",
    }
    return {k: v for k, v in values.items() if v is not None}


def _on_cpu(batch: Any) -> bool:
    from throughput.capture.batch import _collect_tensors
    tensors: list[tuple[str, Any]] = []
    _collect_tensors(batch, "", 0, tensors)
    return bool(getattr(tensors[0][1], "is_cpu", True)) if tensors else True
