"""The small phases: ``optimizer`` for zero_grad/clip_grad_norm_, ``checkpoint`` for saves, ``h2d`` for
batch copies. Each wrapper costs a compile check and a few attribute reads when it does not record.

Saves: ``torch.save``, safetensors' ``save_file``/``save_model`` (when safetensors is installed) and
``torch.distributed.checkpoint``'s ``save``/``async_save``/``save_state_dict``. The last two are
patched when the script imports them (importing torch.distributed.checkpoint takes about a second).
"""

from __future__ import annotations

import threading
import types
from typing import Any, Callable, Protocol

import torch
import torch.nn.utils.clip_grad as _clip_mod

from throughput.capture.compiler import hide_calls, is_compiling
from throughput.capture.gate import Gate
from throughput.capture.patching import Patcher, frameless, transparent
from throughput.capture.profiler import Profiler

_get_ident = threading.get_ident

#: module -> functions whose whole call is the checkpoint phase (module patched when imported)
SAVE_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "safetensors.torch": ("save_file", "save_model"),
    "torch.distributed.checkpoint.state_dict_saver": ("save", "async_save", "save_state_dict"),
}
_DCP = "torch.distributed.checkpoint"


class _Running(Protocol):
    @property
    def active(self) -> bool: ...


class PhaseCalls:
    """Wrappers whose whole call is one phase, outermost call only (a save inside a save is one), and
    not while any of ``blockers`` is running."""

    def __init__(self, prof: Profiler, gate: Gate, phase: str, blockers: tuple[_Running, ...] = ()) -> None:
        self._prof, self._gate, self._phase, self._blockers = prof, gate, phase, blockers
        self.active = False
        self.clip_seen = False

    def wrap(self, orig: Callable[..., Any], clip: bool = False) -> Callable[..., Any]:
        """``clip``: the wrapped function is gradient clipping (noted even when it is not timed)."""
        gate, blockers, prof, phase = self._gate, self._blockers, self._prof, self._phase

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if is_compiling():
                return orig(*args, **kwargs)
            if clip:
                self.clip_seen = True
            blocked = self.active or not gate.open or _get_ident() != gate.thread
            for b in blockers:   # a loop, not any(genexpr): a generator would be a frame Dynamo sees
                blocked = blocked or b.active
            if blocked:
                return orig(*args, **kwargs)
            self.active = True
            frame = prof.open_phase(phase)
            try:
                return orig(*args, **kwargs)
            finally:
                self.active = False
                prof.close_phase(frame)
        return transparent(orig, wrapped)


class SaveCalls(PhaseCalls):
    """The ``checkpoint`` phase: every save function of torch, safetensors and torch.distributed.checkpoint."""

    def __init__(self, prof: Profiler, gate: Gate) -> None:
        super().__init__(prof, gate, "checkpoint")
        self._patcher: Patcher | None = None

    def install(self, p: Patcher) -> None:
        self._patcher = p
        save = self.wrap(torch.save)
        p.set(torch, "save", save)
        p.set(torch.serialization, "save", save)
        for module, names in SAVE_FUNCTIONS.items():
            p.on_import(module, self._patch_module(p, names))
        p.on_import(_DCP, self._adopt_reexports)

    def _patch_module(self, p: Patcher, names: tuple[str, ...]) -> Callable[[types.ModuleType], None]:
        def patch(module: types.ModuleType) -> None:
            for name in names:
                if callable(getattr(module, name, None)):
                    wrapper = self.wrap(getattr(module, name))
                    parent = _parent_reexporting(module, name)
                    p.set(module, name, wrapper)
                    if parent is not None:   # already imported: the package's names too
                        p.set(parent, name, wrapper)
        return patch

    def _adopt_reexports(self, package: types.ModuleType) -> None:
        """torch.distributed.checkpoint bound our wrappers while it was imported: restore its originals."""
        for name in SAVE_FUNCTIONS[f"{_DCP}.state_dict_saver"]:
            value = getattr(package, name, None)
            original = getattr(value, "__wrapped__", None)
            if original is not None and self._patcher is not None:
                self._patcher.adopt(package, name, original)


def _parent_reexporting(module: types.ModuleType, name: str) -> types.ModuleType | None:
    import sys
    parent = sys.modules.get(module.__name__.rpartition(".")[0])
    if parent is not None and parent.__name__ == _DCP and getattr(parent, name, None) is getattr(module, name, None):
        return parent
    return None


class AuxCalls(PhaseCalls):
    """zero_grad and clip_grad_norm_: the ``optimizer`` phase, unless a step or forward is running."""

    def __init__(self, prof: Profiler, gate: Gate, optimizers: _Running, forward: _Running) -> None:
        super().__init__(prof, gate, "optimizer", blockers=(optimizers, forward))

    def install(self, p: Patcher) -> None:
        p.set(torch.optim.Optimizer, "zero_grad", self.wrap(torch.optim.Optimizer.zero_grad))
        p.set(torch.nn.Module, "zero_grad", self.wrap(torch.nn.Module.zero_grad))
        clip = self.wrap(_clip_mod.clip_grad_norm_, clip=True)
        p.set(_clip_mod, "clip_grad_norm_", clip)
        p.set(torch.nn.utils, "clip_grad_norm_", clip)


class CopyCalls:
    """Tensor.to / Tensor.cuda: the ``h2d`` phase for a copy from host memory to a device made outside
    the model (inside a forward or backward it is part of that phase)."""

    def __init__(self, prof: Profiler, gate: Gate, forward: _Running, backward: _Running) -> None:
        self._prof, self._gate, self._forward, self._backward = prof, gate, forward, backward

    def install(self, p: Patcher) -> None:
        """Where the C helper runs, ``Tensor.to``/``cuda`` are ``_bypass.Around`` objects: no frame of ours
        while the copy runs, so a warning it raises (a complex-to-real cast) is reported at the script's
        line, as in a plain run; the Python wrappers from the first compile start on
        (``Patcher.set_frameless``: ``torch.Tensor.to(x, ...)`` in a compiled function broke its graph)."""
        hide_calls(targets_device)
        for name in ("to", "cuda"):
            p.set_frameless(torch.Tensor, (name,), *self._wrappers(getattr(torch.Tensor, name), cuda=name == "cuda"))

    def _wrappers(self, orig: Callable[..., Any], cuda: bool) -> tuple[Any, Callable[..., Any]]:
        """(the C wrapper or None where the helper does not run, the Python wrapper) of ``orig``."""
        gate, forward, backward, prof = self._gate, self._forward, self._backward, self._prof

        def h2d_phase(*args: Any, **kwargs: Any) -> Any:
            """The h2d phase's token for this call, or None when it is not a copy to time. Reads the tensor
            (``is_cpu``, which a subclass's __torch_function__ sees) only for a copy to a device, and
            leaves a call with no tensor first to the original (its TypeError, as without us)."""
            if (is_compiling() or forward.active or backward.active or not gate.open or not args
                    or not (cuda or targets_device(args[1:], kwargs)) or _get_ident() != gate.thread
                    or not isinstance(args[0], torch.Tensor) or not args[0].is_cpu):
                return None
            return prof.open_phase("h2d")

        name = orig.__name__

        def copy(t: Any, /, *args: Any, **kwargs: Any) -> Any:
            if is_compiling():
                # Dynamo traces a method call by name, as it traces Tensor.to(x, ...) unpatched (calling
                # orig, a C method it finds no source for, broke the graph); not where the tensor's class
                # overrides the method (its super().to() came here: by name, that recursed)
                if getattr(type(t), name, None) is copy:
                    return getattr(t, name)(*args, **kwargs)
                return orig(t, *args, **kwargs)
            frame = h2d_phase(t, *args, **kwargs)
            if frame is None:
                return orig(t, *args, **kwargs)
            try:
                return orig(t, *args, **kwargs)
            finally:
                prof.close_phase(frame)
        hide_calls(h2d_phase)
        made = (frameless(orig, h2d_phase, prof.close_phase),   # None: only the Python wrapper
                transparent(orig, copy))
        for wrapper in made:
            if wrapper is not None:
                # pickle finds a function by its module and qualified name; the original (a C method of
                # torch._C.TensorBase) pickles as getattr(TensorBase, name), which a wrapper cannot: named
                # as torch.Tensor's, it pickles as that reference, which reads back as the original anywhere
                wrapper.__module__, wrapper.__qualname__ = "torch", f"Tensor.{orig.__name__}"
        return made


def targets_device(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Does a ``Tensor.to`` call name a device other than the CPU?"""
    device = kwargs.get("device")
    if device is None and args:
        first = args[0]
        if isinstance(first, torch.Tensor):
            device = first.device
        elif isinstance(first, (str, torch.device, int)) and not isinstance(first, bool):
            device = first
    if device is None:
        return False
    if isinstance(device, str):
        return not device.startswith("cpu")
    if isinstance(device, torch.device):
        return device.type != "cpu"
    return True  # an int is a CUDA device index
