"""Zero-code instrumentation: phases and steps from an unmodified training script.

``Instrumentation(prof).install()`` patches torch for the run and ``remove()`` restores every patched
attribute and hook. What becomes which phase:

- ``data``: waiting in ``_BaseDataLoaderIter.__next__`` (all loaders, worker processes or not);
  a wait made with grad disabled (an evaluation loop) counts as ``eval``.
- ``forward``/``eval``: the outermost ``nn.Module`` call (``Module.__call__``); it is ``eval`` when
  grad is disabled or the module is in eval mode.
- ``backward``: ``Tensor.backward`` / ``torch.autograd.backward`` (outermost call).
- ``optimizer``: ``step`` of any ``torch.optim.Optimizer`` (global step hooks), ``zero_grad`` and
  ``clip_grad_norm_``. An LBFGS closure's forward and backward nest inside it.
- ``h2d``: ``Tensor.to``/``Tensor.cuda`` from a CPU tensor to another device, outside the model.
- ``checkpoint``: ``torch.save``.

Steps: one per update of the primary optimizer (the first one that steps). When no torch.optim
optimizer was ever constructed, each outermost ``backward()`` ends a step instead.

Hot path: each hook does a thread check, a few attribute reads and, at most, one recorder open/close.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

import torch
import torch.nn.utils.clip_grad as _clip_mod
import torch.optim.optimizer as _optim_mod

from throughput.capture.batch import BatchStats, describe_batch
from throughput.capture.hygiene import Hygiene
from throughput.capture.loaders import LoaderPatches
from throughput.capture.overrides import Overrides
from throughput.capture.patching import Patcher, mark
from throughput.capture.profiler import Profiler
from throughput.capture.steps import add_loss as _add_loss
from throughput.capture.steps import keep_loss as _keep_loss
from throughput.capture.wrappers import (optimizer_context, optimizer_step_running, wrap_aux, wrap_copy,
                                         wrap_phase)
from throughput.session.records import StepRule

_get_ident = threading.get_ident
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)  # torch < 2.3 has none
_current: "Instrumentation | None" = None
_fork_handler_registered = False


class MaxStepsReached(BaseException):
    """Raised from a step hook once ``max_steps`` steps are done; the runner catches it.

    A BaseException so that a script's ``except Exception`` does not swallow it."""


def active_instrumentation() -> "Instrumentation | None":
    return _current


class Instrumentation:
    """Installs the hooks that turn a script's torch calls into phases and steps."""

    def __init__(self, prof: Profiler, overrides: Overrides | None = None, max_steps: int | None = None) -> None:
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.prof = prof
        self.overrides = overrides or Overrides()
        self.max_steps = max_steps
        self.hygiene = Hygiene(prof)
        self._patcher = Patcher()
        self._loaders = LoaderPatches(self)
        self._owner = _get_ident()
        self.enabled = False
        self._fwd_depth = 0
        self._fwd_frame: Any = None
        self._autocast: Any = None
        self._bwd_depth = 0
        self._aux_depth = 0                        # zero_grad / clip_grad_norm_ in progress
        self._opt_frames: list[tuple[int, Any]] = []
        self._optimizers_created = 0
        self._primary: int | None = None
        self._last_stepped: int | None = None
        self._optimizer_names: dict[int, str] = {}
        self._steps_by_rule = {StepRule.OPTIMIZER: 0, StepRule.BACKWARD: 0}
        self._step_pending: StepRule | None = None
        self.pending_batches: list[BatchStats] = []  # fetched, not yet trained on
        self.loader_used = False
        self._step_stats: list[BatchStats] = []
        self._closure_stats: BatchStats | None = None
        self._micro = 0
        self._arg_batch_counted = False            # manual batching: this micro-step's batch is counted
        self._step_loss: Any = None
        self._backward_calls = 0
        self._eval_mode_module: torch.nn.Module | None = None
        self._eval_mode_batches: list[BatchStats] = []
        self._clip_seen = False
        self._amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.overrides.amp or "off")
        self._device_types: dict[int, str] = {}
        self._saved_tf32: tuple[bool, bool] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def install(self) -> "Instrumentation":
        global _current
        if _current is not None:
            raise RuntimeError("throughput instrumentation is already installed in this process")
        _register_fork_handler()
        self.prof.start()
        self._owner = _get_ident()
        p = self._patcher
        try:
            self._loaders.install(p)
            p.set(torch.nn.Module, "__call__", mark(self._wrap_module_call(torch.nn.Module.__call__)))
            p.keep(_optim_mod.register_optimizer_step_pre_hook(mark(self._optimizer_pre)))
            p.keep(_optim_mod.register_optimizer_step_post_hook(mark(self._optimizer_post)))
            self._patch_calls(p)
            self._apply_tf32()
        except BaseException:
            p.restore()
            self.prof.stop()
            raise
        _current = self
        self.enabled = True
        return self

    def remove(self) -> None:
        """Restore torch, then record the run's step rule, context and notes. Safe to call twice."""
        global _current
        self.enabled = False
        if self._autocast is not None:
            self._autocast.__exit__(None, None, None)
            self._autocast = None
        self._patcher.restore()
        if self._saved_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._saved_tf32
            self._saved_tf32 = None
        if _current is self:
            _current = None
            self._record_outcome()

    def _patch_calls(self, p: Patcher) -> None:
        p.set(torch.Tensor, "backward", mark(self._wrap_backward(torch.Tensor.backward)))
        p.set(torch.autograd, "backward", mark(self._wrap_backward(torch.autograd.backward)))
        zero = wrap_aux(self, torch.optim.Optimizer.zero_grad)
        p.set(torch.optim.Optimizer, "zero_grad", mark(zero))
        p.set(torch.nn.Module, "zero_grad", mark(wrap_aux(self, torch.nn.Module.zero_grad)))
        clip = mark(wrap_aux(self, _clip_mod.clip_grad_norm_, clip=True))
        p.set(_clip_mod, "clip_grad_norm_", clip)
        p.set(torch.nn.utils, "clip_grad_norm_", clip)
        init = torch.optim.Optimizer.__init__
        p.set(torch.optim.Optimizer, "__init__", mark(self._wrap_optimizer_init(init)))
        save = mark(wrap_phase(self, torch.save, "checkpoint"))
        p.set(torch, "save", save)
        p.set(torch.serialization, "save", save)
        p.set(torch.Tensor, "to", mark(wrap_copy(self, torch.Tensor.to, cuda=False)))
        p.set(torch.Tensor, "cuda", mark(wrap_copy(self, torch.Tensor.cuda, cuda=True)))

    def _apply_tf32(self) -> None:
        if self.overrides.tf32 is None:
            return
        self._saved_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = self.overrides.tf32
        torch.backends.cudnn.allow_tf32 = self.overrides.tf32

    def mine(self) -> bool:
        """True in the thread (and process) that runs the script, while installed."""
        return self.enabled and _get_ident() == self._owner

    # -- forward --------------------------------------------------------------------------------
    def _wrap_module_call(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        """``nn.Module.__call__``: the outermost call is a phase; inner calls cost one check.

        (Global forward hooks would push every inner module through torch's slow hook path, about
        2 us per module call; this wrapper adds well under 1 us to an inner call.)"""
        def __call__(module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
            if self._fwd_depth or not self.enabled or _is_compiling() or _get_ident() != self._owner:
                return orig(module, *args, **kwargs)
            try:
                self._forward_enter(module, args, kwargs)
                return orig(module, *args, **kwargs)
            finally:
                self._forward_exit()
        return __call__

    def _forward_enter(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        grad = torch.is_grad_enabled()
        training = grad and module.training
        self._fwd_depth = 1
        self._fwd_frame = self.prof._open("forward" if training else "eval")
        if training:
            self._on_train_forward(module, args or kwargs)
        elif grad:  # eval mode with grad on: evaluation, or a model left in eval mode by mistake
            self._eval_mode_module = module
            # Its batches count only if a backward follows (training left in eval mode by mistake).
            self._eval_mode_batches, self.pending_batches = self.pending_batches, []
        else:
            self.pending_batches.clear()  # the batches fetched for this forward were for evaluation
            self.hygiene.eval_forward(module, grad)

    def _forward_exit(self) -> None:
        self._fwd_depth = 0
        if self._autocast is not None:
            ac, self._autocast = self._autocast, None
            ac.__exit__(None, None, None)
        frame, self._fwd_frame = self._fwd_frame, None
        self.prof._close(frame)
        self._maybe_end_pending()

    def _on_train_forward(self, module: torch.nn.Module, args: Any) -> None:
        self._eval_mode_module = None
        self._eval_mode_batches = []
        if self.pending_batches:
            self._commit_batches()
        arg_stats = None
        if not self.loader_used and not self._arg_batch_counted and self.hygiene.scan(module).has_parameters:
            # Manual batching: the batch is the first tensor argument of the first forward of a model
            # (not a loss module) in each micro-step.
            arg_stats = describe_batch(args, count_padding=False)
            self._arg_batch_counted = True
            if not self._opt_frames:
                self._step_stats.append(arg_stats)
            elif self._closure_stats is None:  # LBFGS re-evaluates the same batch: count it once
                self._closure_stats = arg_stats
        if self.hygiene.needs_batch_size(module):
            stats = arg_stats or describe_batch(args, count_padding=False)
            self.hygiene.train_forward(module, stats.samples)
        if self._amp_dtype is not None:
            ac = torch.autocast(device_type=self._device_type(module), dtype=self._amp_dtype)
            ac.__enter__()
            self._autocast = ac

    def _device_type(self, module: torch.nn.Module) -> str:
        cached = self._device_types.get(id(module))
        if cached is None:
            if len(self._device_types) > 256:
                self._device_types.clear()
            param = next(module.parameters(), None)
            cached = param.device.type if param is not None else "cpu"
            self._device_types[id(module)] = cached
        return cached

    def _commit_batches(self) -> None:
        self._step_stats.extend(self.pending_batches)
        self.pending_batches.clear()
        self.loader_used = True

    # -- backward -------------------------------------------------------------------------------
    def _wrap_backward(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        def backward(*args: Any, **kwargs: Any) -> Any:
            if self._bwd_depth or not self.enabled or _get_ident() != self._owner:
                return orig(*args, **kwargs)
            self._bwd_depth = 1
            frame = self.prof._open("backward")
            try:
                out = orig(*args, **kwargs)
            finally:
                self._bwd_depth = 0
                self.prof._close(frame)
            self._after_backward(args[0] if args else kwargs.get("tensors"))
            return out
        return backward

    def _after_backward(self, loss: Any) -> None:
        self._backward_calls += 1
        self._arg_batch_counted = False
        if self._eval_mode_module is not None:
            self.hygiene.trained_in_eval_mode(self._eval_mode_module)
            self._eval_mode_module = None
            self.pending_batches.extend(self._eval_mode_batches)
            self._eval_mode_batches = []
        if self.pending_batches:
            self._commit_batches()
        if self._opt_frames and optimizer_step_running():
            if self._step_loss is None:   # a closure (LBFGS): the step's loss is its first evaluation's
                self._step_loss = _scalar(loss)
            return
        # micro-steps add up: the loss of a step with gradient accumulation is the sum passed to backward
        self._step_loss = _add_loss(self._step_loss, _scalar(loss))
        if self._opt_frames:
            self._recover_optimizer(self._opt_frames[0][0])  # a step that raised and was caught
        self._micro += 1
        if self._optimizers_created == 0:
            self._end_step(StepRule.BACKWARD)

    # -- optimizer ------------------------------------------------------------------------------
    def _wrap_optimizer_init(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        def __init__(opt: Any, *args: Any, **kwargs: Any) -> None:
            orig(opt, *args, **kwargs)
            if self.mine():
                self._optimizers_created += 1
        return __init__

    def _optimizer_pre(self, opt: Any, args: Any, kwargs: Any) -> None:
        if not self.mine():
            return None
        oid = id(opt)
        if any(o == oid for o, _ in self._opt_frames):
            self._recover_optimizer(oid)  # its previous step raised, so the post hook never ran
        self._opt_frames.append((oid, self.prof._open("optimizer")))
        if oid not in self._optimizer_names:
            self._optimizer_names[oid] = type(opt).__name__
            self.prof.event("context", f"optimizer {type(opt).__name__}", **optimizer_context(opt))
        return None

    def _optimizer_post(self, opt: Any, args: Any, kwargs: Any) -> None:
        if not self.mine() or not self._opt_frames:
            return None
        oid = id(opt)
        if self._opt_frames[-1][0] != oid:
            self._recover_optimizer(oid)
            return None
        _, frame = self._opt_frames.pop()
        self.prof._close(frame)
        if not self._opt_frames and self._is_primary(oid):
            self._end_step(StepRule.OPTIMIZER)
        return None

    def _recover_optimizer(self, oid: int) -> None:
        while self._opt_frames:
            o, frame = self._opt_frames.pop()
            if frame is not None:
                self.prof.recorder.close_through(frame)
            if o == oid:
                return

    def _is_primary(self, oid: int) -> bool:
        """Steps follow the first optimizer that stepped; another one takes over when it steps twice
        in a row (a script that moved on to a second model)."""
        if self._primary is None or (oid != self._primary and self._last_stepped == oid):
            self._primary = oid
        self._last_stepped = oid
        return oid == self._primary

    # -- small phases ---------------------------------------------------------------------------
    # -- steps ----------------------------------------------------------------------------------
    def _end_step(self, rule: StepRule) -> None:
        if self.prof.recorder.depth:  # e.g. optimizer.step() called inside a module's forward
            self._step_pending = rule
            return
        self._step_pending = None
        if self.pending_batches:
            self._commit_batches()
        stats = self._step_stats or ([self._closure_stats] if self._closure_stats else [])
        self.prof.step(samples=_total(stats, "samples"), tokens=_total(stats, "tokens"),
                       padding_tokens=_total(stats, "padding_tokens"), loss=self._step_loss,
                       micro_steps=max(1, self._micro))
        self._steps_by_rule[rule] += 1
        self._step_stats, self._closure_stats, self._micro, self._step_loss = [], None, 0, None
        self._eval_mode_batches = []
        if self.max_steps is not None and self.prof.steps_done >= self.max_steps:
            self.enabled = False
            raise MaxStepsReached(f"--max-steps {self.max_steps} reached")

    def _maybe_end_pending(self) -> None:
        if self._step_pending is not None and not self.prof.recorder.depth:
            self._end_step(self._step_pending)

    def _record_outcome(self) -> None:
        from throughput.capture.outcome import record_outcome
        record_outcome(self, self._steps_by_rule, self._optimizers_created, self._backward_calls,
                       sorted(set(self._optimizer_names.values())), self._clip_seen)


def _scalar(loss: Any) -> Any:
    if isinstance(loss, (list, tuple)):
        loss = loss[0] if loss else None
    if isinstance(loss, torch.Tensor) and loss.numel() == 1:
        return _keep_loss(loss)  # CPU: read now; device: kept detached, read at the end (no sync here)
    return None


def _total(stats: list[BatchStats], name: str) -> int | None:
    values = [getattr(s, name) for s in stats]
    if not values or any(v is None for v in values):
        return None
    return int(sum(values))


def _disable_in_child() -> None:
    """DataLoader workers are forked from the profiled process: they must not record."""
    if _current is not None:
        _current.enabled = False


def _register_fork_handler() -> None:
    global _fork_handler_registered
    if not _fork_handler_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_disable_in_child)
        _fork_handler_registered = True
