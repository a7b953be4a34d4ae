"""DataLoader instrumentation: the ``data`` phase, batch contents and loader settings.

``_BaseDataLoaderIter.__next__`` is the one place every loader's batches pass through (single- and
multi-process, map-style and iterable datasets, infinite samplers, loaders built inside libraries).
``DataLoader.__init__`` is wrapped only to count loaders and to let ``apply.RunChanges`` rewrite their
keyword arguments; the wrapper keeps the original's signature, so code that rebuilds a loader from
``inspect.signature(DataLoader.__init__)`` and the instance's attributes (Lightning's sampler
injection) sees what it sees without the profiler.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import torch
import torch.utils.data.dataloader as _dl

from throughput.capture.apply import RunChanges
from throughput.capture.batch import BatchDescriber
from throughput.capture.digests import DigestRecorder, digests_wanted
from throughput.capture.compiler import hide_calls, is_compiling
from throughput.capture.gate import Gate
from throughput.capture.patching import Patcher, transparent
from throughput.capture.profiler import Profiler
from throughput.capture.stepping import StepTracker

_CTX = "_throughput_loader_ctx"
_get_ident = threading.get_ident
_MAX_RECORDED = 1024   # loaders whose settings were recorded (ids kept only to record each once)


class LoaderCalls:
    """Patches DataLoader construction and iteration for one run."""

    def __init__(self, prof: Profiler, gate: Gate, steps: StepTracker, changes: RunChanges) -> None:
        self._prof, self._gate, self._steps, self._changes = prof, gate, steps, changes
        self._recorded: set[int] = set()
        # Remembers where a loader's batches keep their counts: the usual batch is read at those places
        # instead of walked twice (once for the device, once for the counts). Padding is counted only
        # when the token ids are on the CPU (reading a CUDA tensor would sync).
        self._describe = BatchDescriber().describe
        n = digests_wanted()   # the advisor's worker-split check only (capture/digests.py); off in a user's run
        self.digests = DigestRecorder(n, lambda **d: prof.event("context", "batch digests", **d)) if n else None

    def install(self, p: Patcher) -> None:
        hide_calls(self.fetched, self.iterator_started, self.iterator_made)
        p.set(_dl.DataLoader, "__init__", self._wrap_init(_dl.DataLoader.__init__))
        p.set(_dl.DataLoader, "_get_iterator", self._wrap_get_iterator(_dl.DataLoader._get_iterator))
        p.set(_dl._BaseDataLoaderIter, "__next__", self._wrap_next(_dl._BaseDataLoaderIter.__next__))

    def _wrap_init(self, orig: Callable[..., None]) -> Callable[..., None]:
        gate, rewrite = self._gate, self._changes.loader_arguments(orig)

        def __init__(loader: Any, *args: Any, **kwargs: Any) -> None:
            if not is_compiling() and gate.allows():
                args, kwargs = rewrite(args, kwargs)
            orig(loader, *args, **kwargs)
        return transparent(orig, __init__)

    def _wrap_get_iterator(self, orig: Callable[[Any], Any]) -> Callable[[Any], Any]:
        gate = self._gate

        def _get_iterator(loader: Any) -> Any:
            if is_compiling() or not gate.allows():
                return orig(loader)
            # Starting an epoch (worker processes start here unless persistent) is waiting for data.
            frame = self.iterator_started()
            try:
                it = orig(loader)
            finally:
                self._prof.close_phase(frame)
            self.iterator_made(loader, it)
            return it
        return transparent(orig, _get_iterator)

    def _wrap_next(self, orig: Callable[[Any], Any]) -> Callable[[Any], Any]:
        gate, prof = self._gate, self._prof

        def __next__(it: Any) -> Any:
            if is_compiling() or not gate.open or _get_ident() != gate.thread:
                return orig(it)
            training = torch.is_grad_enabled()  # evaluation loops fetch under no_grad
            frame = prof.open_phase("data" if training else "eval")
            try:
                batch = orig(it)
            except BaseException:
                prof.close_phase(frame)
                raise
            self.fetched(it, batch, frame, training)
            return batch
        return transparent(orig, __next__)

    def iterator_started(self) -> Any:
        return self._prof.open_phase("data" if torch.is_grad_enabled() else "eval")

    def iterator_made(self, loader: Any, it: Any) -> None:
        try:
            it.__dict__[_CTX] = (id(loader), loader_settings(loader))
        except Exception:  # an exotic iterator without __dict__: settings are optional
            pass

    def fetched(self, it: Any, batch: Any, frame: Any, training: bool) -> None:
        prof = self._prof
        prof.close_phase(frame)
        if not training:
            return
        self._steps.fetched(self._describe(batch, prof.pad_id))
        if self.digests is not None:
            self.digests.add(batch)
        ctx = it.__dict__.pop(_CTX, None)
        if ctx is not None and ctx[0] not in self._recorded and len(self._recorded) < _MAX_RECORDED:
            self._recorded.add(ctx[0])
            prof.event("context", "training DataLoader settings", **ctx[1])


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

