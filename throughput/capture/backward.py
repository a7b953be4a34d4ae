"""The ``backward`` phase: ``Tensor.backward`` and ``torch.autograd.backward`` (the outermost call).

After a backward: its loss is the step's (the first backward of a step), it is one micro-step, and,
when the script never built a torch.optim optimizer, it ends a step.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import torch

from throughput.capture.compiler import hide_calls, is_compiling
from throughput.capture.forward import ModuleCalls
from throughput.capture.gate import Gate
from throughput.capture.hygiene import Hygiene
from throughput.capture.optimizers import OptimizerCalls
from throughput.capture.patching import Patcher, frameless, transparent
from throughput.capture.profiler import Profiler
from throughput.capture.scaler import ScalerCalls
from throughput.capture.stepping import StepTracker
from throughput.session.records import StepRule

_get_ident = threading.get_ident


class BackwardCalls:
    """The outermost backward of the script's thread and the count of backward calls."""

    def __init__(self, prof: Profiler, gate: Gate, steps: StepTracker, forward: ModuleCalls,
                 optimizers: OptimizerCalls, hygiene: Hygiene, scaler: ScalerCalls) -> None:
        self._prof, self._gate, self._steps, self._scaler = prof, gate, steps, scaler
        self._forward, self._optimizers, self._hygiene = forward, optimizers, hygiene
        self.active = False        # an outermost backward is running (read by other hooks)
        self.calls = 0

    def install(self, p: Patcher) -> None:
        """``_bypass.Around`` wrappers where the C helper runs (``Patcher.set_frameless``): no frame of
        ours during the backward, so a warning autograd raises is reported at the script's line and a
        traceback reads as in a plain run."""
        hide_calls(self.exit, self.abort, self.opens, self.closes, self.fails)
        for owner in (torch.Tensor, torch.autograd):
            orig = owner.backward
            p.set_frameless(owner, ("backward",), frameless(orig, self.opens, self.closes, self.fails), self._wrap(orig))

    def _wrap(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        opens, closes, fails = self.opens, self.closes, self.fails

        def backward(*args: Any, **kwargs: Any) -> Any:
            opened = opens(*args, **kwargs)
            if opened is None:
                return orig(*args, **kwargs)
            try:
                out = orig(*args, **kwargs)
            except BaseException:
                fails(opened)
                raise
            closes(opened)
            return out
        return transparent(orig, backward)

    def opens(self, *args: Any, **kwargs: Any) -> tuple[Any, Any] | None:
        """Before a backward call: (its open phase, the loss) when it is the outermost of the script's
        thread, None when it is not timed."""
        gate = self._gate
        if is_compiling() or self.active or not gate.open or _get_ident() != gate.thread:
            return None
        self.active = True
        return self._prof.open_phase("backward"), args[0] if args else kwargs.get("tensors")

    def closes(self, opened: tuple[Any, Any]) -> None:
        """After a timed backward that returned."""
        self.exit(*opened)

    def fails(self, opened: tuple[Any, Any]) -> None:
        """After a timed backward that raised."""
        self.abort(opened[0])

    def abort(self, frame: Any) -> None:
        """The backward raised: close its phase, count nothing."""
        self.active = False
        self._prof.close_phase(frame)

    def exit(self, frame: Any, loss: Any) -> None:
        self.active = False
        self._prof.close_phase(frame)
        self.calls += 1
        eval_module = self._forward.take_eval_mode_module()
        if eval_module is not None:
            self._hygiene.trained_in_eval_mode(eval_module)
        in_closure = self._optimizers.active and self._optimizers.backward_in_step()
        counted = not in_closure or self._optimizers.first_closure_backward()
        if self._scaler.seen:   # scaler.scale(loss).backward(): the script's loss (no call without a scaler)
            loss = self._scaler.unscaled(loss)
        self._steps.backward(loss, trained_in_eval_mode=eval_module is not None, counted=counted)
        if not counted:
            return  # a closure's re-evaluation (LBFGS): part of the same micro-batch
        self._steps.micro_step()
        if in_closure:
            return  # the optimizer's post hook ends this step
        if self._optimizers.created == 0:
            self._steps.end(StepRule.BACKWARD)
