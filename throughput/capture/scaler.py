"""``torch.amp.GradScaler``: the loss the script meant, and the updates the scaler skipped.

A script with a GradScaler calls ``scaler.scale(loss).backward()``: the tensor backward sees is the
loss times the current scale (2**16 by default), and its value is not the training loss. The wrapped
``scale`` remembers the last (scaled output -> unscaled input) pair, and the backward hook records the
input instead when it sees that output: no read of the scale, no sync.

``scaler.step(optimizer)`` skips ``optimizer.step()`` when the gradients hold inf/NaN (the scaler then
backs its scale off): no update, so no step. The iteration's time stays in the step that follows (it was
spent), but its loss and micro-step are dropped, so that the next step's loss and accumulation count are
those of the update it made. The number of skipped updates is one context event at the end.

Subclasses (``torch.cuda.amp.GradScaler``, ``torch.cpu.amp.GradScaler``) and a disabled scaler pass
through: a disabled ``scale`` returns its input and its ``step`` always updates.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import torch

from throughput.capture.compiler import hide_calls, is_compiling
from throughput.capture.gate import Gate
from throughput.capture.patching import Patcher, transparent
from throughput.capture.profiler import Profiler
from throughput.capture.stepping import StepTracker

_get_ident = threading.get_ident


class ScalerCalls:
    """The last scaled loss and the count of updates a GradScaler skipped."""

    def __init__(self, prof: Profiler, gate: Gate, steps: StepTracker, updates: Callable[[], int],
                 on_skip: Callable[[Any], None]) -> None:
        """``updates()``: optimizer steps seen so far (any optimizer), to tell a skipped update;
        ``on_skip(optimizer)``: told of each skipped update (its turn among several optimizers passes)."""
        self._prof, self._gate, self._steps, self._updates = prof, gate, steps, updates
        self._on_skip = on_skip
        self._scaled: Any = None       # the tensor scale() returned last, and the one it was given
        self._unscaled: Any = None
        self.skipped = 0
        self.seen = False

    def install(self, p: Patcher) -> None:
        scaler_cls = getattr(getattr(torch, "amp", None), "GradScaler", None)
        if scaler_cls is None:
            return
        hide_calls(self.unscaled)
        p.set(scaler_cls, "scale", self._wrap_scale(scaler_cls.scale))
        p.set(scaler_cls, "step", self._wrap_step(scaler_cls.step))

    def _mine(self) -> bool:
        return not is_compiling() and self._gate.open and _get_ident() == self._gate.thread

    def _wrap_scale(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        def scale(scaler: Any, outputs: Any, *args: Any, **kwargs: Any) -> Any:
            out = orig(scaler, outputs, *args, **kwargs)
            if isinstance(out, torch.Tensor) and out is not outputs and self._mine():
                self._scaled, self._unscaled = out, outputs
                self.seen = True
            return out
        return transparent(orig, scale)

    def unscaled(self, loss: Any) -> Any:
        """The loss a backward was given, or what the script passed to ``scale`` if it is that scaled
        output (held only until this backward: a reference, not a copy)."""
        if loss is not None and loss is self._scaled:
            loss = self._unscaled
        self._scaled = self._unscaled = None
        return loss

    def _wrap_step(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        def step(scaler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            if not self._mine():
                return orig(scaler, optimizer, *args, **kwargs)
            before = self._updates()
            out = orig(scaler, optimizer, *args, **kwargs)
            if self._updates() == before and scaler.is_enabled():
                self.skipped += 1
                self._on_skip(optimizer)
            return out
        return transparent(orig, step)

    def record(self, turns: bool = False) -> None:
        """One context event when a GradScaler was used: how many updates it skipped. ``turns``: several
        optimizers took turns (a skipped turn passes; only a round without any update is no step)."""
        if not self.seen:
            return
        self._prof.event("context", "grad scaler", grad_scaler=True, grad_scaler_skipped=self.skipped)
        if not self.skipped:
            return
        if turns:
            self._prof.add_note(f"GradScaler skipped {self.skipped} update(s) (inf/NaN gradients): a skipped "
                                "turn passes and its round still ends a step; a round with no update at all is "
                                "no step (its time and samples are in the step that followed)")
        else:
            self._prof.add_note(f"GradScaler skipped {self.skipped} update(s) (inf/NaN gradients): those "
                                "iterations are no steps; their time and samples are in the step that followed")
