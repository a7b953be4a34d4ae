"""Run-changing overrides (``throughput profile --set``), applied apart from recording.

The recording hooks only measure; what changes the run lives here, in one place: DataLoader keyword
arguments rewritten as loaders are built, ``torch.autocast`` around each outermost training forward,
and the TF32 switches for the run (restored afterwards). Parsing ``--set`` is ``overrides.py``'s job.
"""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any, Callable

import torch

from throughput.capture.overrides import Overrides, apply_loader_overrides

_MAX_DEVICE_CACHE = 256


class RunChanges:
    """Applies an ``Overrides`` record to the running script and counts where it was applied."""

    def __init__(self, overrides: Overrides | None = None) -> None:
        self.overrides = overrides or Overrides()
        self.applied: Counter[str] = Counter()   # loader override key -> loaders it was applied to
        self.loaders_built = 0
        self._amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.overrides.amp or "off")
        # fp32: autocast turned off around the training forward, so a script's own autocast can be
        # measured against fp32 without editing it (a no-op for a script that has none)
        self._amp_off = self.overrides.amp in ("fp32", "off")
        self.autocasts = self._amp_dtype is not None or self._amp_off   # read by the forward hook
        self._changes_loaders = bool(self.overrides.loader_changes())
        self._autocast: Any = None
        self._device_types: dict[int, str] = {}
        self._saved_tf32: tuple[bool, bool] | None = None

    # -- the run ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Switch TF32 for the run if asked."""
        if self.overrides.tf32 is None:
            return
        self._saved_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = self.overrides.tf32
        torch.backends.cudnn.allow_tf32 = self.overrides.tf32

    def stop(self) -> None:
        """Leave any autocast still entered and restore TF32. Safe to call twice."""
        self.leave_forward()
        if self._saved_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._saved_tf32
            self._saved_tf32 = None

    # -- forwards --------------------------------------------------------------------------------
    def enter_training_forward(self, module: torch.nn.Module) -> None:
        """Autocast (``amp``) around an outermost training forward, on its parameters' device type; for
        ``amp=fp32`` autocast disabled there (the script's own, if any, does not reach the model)."""
        if self._amp_dtype is None and not self._amp_off:
            return
        device_type = self._device_type(module)
        ac = (torch.autocast(device_type=device_type, enabled=False) if self._amp_dtype is None
              else torch.autocast(device_type=device_type, dtype=self._amp_dtype))
        ac.__enter__()
        self._autocast = ac

    def leave_forward(self) -> None:
        if self._autocast is not None:
            ac, self._autocast = self._autocast, None
            ac.__exit__(None, None, None)

    def _device_type(self, module: torch.nn.Module) -> str:
        cached = self._device_types.get(id(module))
        if cached is None:
            if len(self._device_types) > _MAX_DEVICE_CACHE:
                self._device_types.clear()
            param = next(module.parameters(), None)
            cached = param.device.type if param is not None else "cpu"
            self._device_types[id(module)] = cached
        return cached

    # -- loaders ---------------------------------------------------------------------------------
    def loader_arguments(self, init: Callable[..., None]) -> Callable[[tuple[Any, ...], dict[str, Any]],
                                                                       tuple[tuple[Any, ...], dict[str, Any]]]:
        """A function that rewrites one ``DataLoader.__init__`` call's (args, kwargs), for ``init``."""
        names = list(inspect.signature(init).parameters)[1:]  # after self

        def rewrite(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
            self.loaders_built += 1
            if not self._changes_loaders:
                return args, kwargs
            merged, applied = apply_loader_overrides({**dict(zip(names, args)), **kwargs}, self.overrides)
            self.applied.update(applied)
            return (), merged
        return rewrite
