"""Wrappers for the small phases (zero_grad, clip_grad_norm_, torch.save, batch copies) and helpers
for the optimizer hooks. Each wrapper costs a few attribute reads when it does not record."""

from __future__ import annotations

import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:
    from throughput.capture.hooks import Instrumentation

_get_ident = threading.get_ident


def wrap_aux(inst: "Instrumentation", orig: Callable[..., Any], clip: bool = False) -> Callable[..., Any]:
    """zero_grad and clip_grad_norm_: the optimizer phase (unless already inside it)."""
    def aux(*args: Any, **kwargs: Any) -> Any:
        if clip:
            inst._clip_seen = True
        if inst._aux_depth or inst._opt_frames or inst._fwd_depth or not inst.mine():
            return orig(*args, **kwargs)
        inst._aux_depth = 1
        frame = inst.prof._open("optimizer")
        try:
            return orig(*args, **kwargs)
        finally:
            inst._aux_depth = 0
            inst.prof._close(frame)
    return aux


def wrap_phase(inst: "Instrumentation", orig: Callable[..., Any], phase: str) -> Callable[..., Any]:
    """``torch.save`` and the like: the whole call is ``phase``."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not inst.mine():
            return orig(*args, **kwargs)
        frame = inst.prof._open(phase)
        try:
            return orig(*args, **kwargs)
        finally:
            inst.prof._close(frame)
    return wrapped


def wrap_copy(inst: "Instrumentation", orig: Callable[..., Any], cuda: bool) -> Callable[..., Any]:
    """Tensor.to / Tensor.cuda: a copy from host memory to a device, made outside the model."""
    def copy(t: Any, *args: Any, **kwargs: Any) -> Any:
        if (not t.is_cpu or inst._fwd_depth or inst._bwd_depth or not inst.enabled
                or not (cuda or targets_device(args, kwargs)) or _get_ident() != inst._owner):
            return orig(t, *args, **kwargs)
        frame = inst.prof._open("h2d")
        try:
            return orig(t, *args, **kwargs)
        finally:
            inst.prof._close(frame)
    return copy


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


def optimizer_context(opt: Any) -> dict[str, str | bool | int]:
    defaults = getattr(opt, "defaults", {}) or {}
    ctx: dict[str, str | bool | int] = {"optimizer": type(opt).__name__,
                                        "param_groups": len(getattr(opt, "param_groups", ()))}
    for key in ("fused", "foreach"):
        if isinstance(defaults.get(key), bool):
            ctx[key] = defaults[key]
    return ctx


_STEP_WRAPPER_CODE = torch.optim.Optimizer.profile_hook_step(lambda: None).__code__


def optimizer_step_running() -> bool:
    """Is an ``Optimizer.step`` on the call stack? (Only asked when a backward runs while an
    optimizer phase is open: an LBFGS closure, or a step that raised and was caught.)"""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code is _STEP_WRAPPER_CODE:
            return True
        frame = frame.f_back
    return False
