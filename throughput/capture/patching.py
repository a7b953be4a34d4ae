"""Reversible monkey-patching: every attribute set here is restored by ``Patcher.restore()``.

Wrappers carry the marker attribute ``WRAPPER_MARK`` so a test (or a user) can check that nothing
is left behind after a run (``leftover_patches``).
"""

from __future__ import annotations

import types
from typing import Any, Callable, Iterator

WRAPPER_MARK = "__throughput_wrapper__"
_MISSING = object()


def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Tag a wrapper so that leftover checks can recognise it (a bound method: its function)."""
    setattr(getattr(fn, "__func__", fn), WRAPPER_MARK, True)
    return fn


def is_wrapper(obj: Any) -> bool:
    if not isinstance(obj, (types.FunctionType, types.MethodType)):
        return False  # namespaces such as torch.ops answer every getattr
    return getattr(obj, WRAPPER_MARK, False) is True


class Patcher:
    """Sets attributes and remembers how to undo each one (in reverse order)."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []
        self._handles: list[Any] = []

    def set(self, owner: Any, name: str, value: Any) -> Any:
        """Replace ``owner.name`` with ``value``; returns the original (looked up the normal way)."""
        original = getattr(owner, name)
        own = owner.__dict__.get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        self._undo.append((owner, name, own))
        setattr(owner, name, value)
        return original

    def keep(self, handle: Any) -> None:
        """Remember a removable hook handle (anything with ``remove()``)."""
        self._handles.append(handle)

    def restore(self) -> None:
        """Undo everything, newest first. Safe to call twice."""
        while self._handles:
            self._handles.pop().remove()
        while self._undo:
            owner, name, own = self._undo.pop()
            if own is _MISSING:
                try:
                    delattr(owner, name)
                except AttributeError:
                    pass
            else:
                setattr(owner, name, own)

    @property
    def active(self) -> bool:
        return bool(self._undo or self._handles)


def leftover_patches() -> list[str]:
    """Names of throughput wrappers still installed on torch (empty after a clean run)."""
    import sys
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    found: list[str] = []
    for where, owner in _patch_targets(torch):
        for name, value in list(vars(owner).items()):
            if is_wrapper(value):
                found.append(f"{where}.{name}")
    import torch.nn.modules.module as mm
    import torch.optim.optimizer as oo
    for label, table in (("global forward pre-hooks", mm._global_forward_pre_hooks),
                         ("global forward hooks", mm._global_forward_hooks),
                         ("global optimizer pre-hooks", oo._global_optimizer_pre_hooks),
                         ("global optimizer post-hooks", oo._global_optimizer_post_hooks)):
        found += [label for hook in table.values() if is_wrapper(hook)]
    return found


def _patch_targets(torch: Any) -> Iterator[tuple[str, Any]]:
    import torch.utils.data.dataloader as dl
    yield "torch", torch
    yield "torch.Tensor", torch.Tensor
    yield "torch.autograd", torch.autograd
    yield "torch.serialization", torch.serialization
    yield "torch.nn.Module", torch.nn.Module
    yield "torch.nn.utils", torch.nn.utils
    yield "torch.nn.utils.clip_grad", torch.nn.utils.clip_grad
    yield "torch.optim.Optimizer", torch.optim.Optimizer
    yield "DataLoader", dl.DataLoader
    yield "_BaseDataLoaderIter", dl._BaseDataLoaderIter
