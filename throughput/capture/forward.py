"""The ``forward`` and ``eval`` phases: the outermost ``nn.Module`` call.

``nn.Module.__call__`` is wrapped for the run. The outermost call in the script's thread is a phase
(``eval`` when grad is disabled or the module is in eval mode); a call nested inside it is not timed.
Calls made while ``torch.jit.trace`` or ``torch.fx`` trace the model are not phases either (their
arguments are tracers' values, which the batch counters must not read).

Cost independent of the model's size: a nested call would still pay the wrapper's Python frame (about
0.6 us here, +3% on a 300-block model), so the first steps (the warm-up, at least one) learn which
module classes are ever called outermost. After them, every class seen only nested gets a ``Bypass``
(``_bypass.c``) as its ``__call__``: while ``nn.Module.__call__`` is our wrapper, its instances call the
original directly, with no Python frame; when something else has replaced ``nn.Module.__call__`` (fx's
and export's tracers do), they call that, as in a plain run, and read from the class, ``__call__`` is
what ``nn.Module.__call__`` is. A class first seen later still goes through the wrapper. A class seen
only nested during those steps and called outermost later is not timed (its time is ``other``).
Nothing is changed once torch.compile has compiled anything, since Dynamo guards on what a module's
``__call__`` is and would recompile; nothing is bypassed where the C helper is not built.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

import torch

from throughput.capture.apply import RunChanges
from throughput.capture.compiler import hide_calls, is_compiling
from throughput.capture.gate import Gate
from throughput.capture.hygiene import Hygiene
from throughput.capture.optimizers import OptimizerCalls
from throughput.capture.patching import Patcher, frameless, transparent
from throughput.capture.profiler import Profiler
from throughput.capture.recorder import bypass_type
from throughput.capture.stepping import StepTracker


_get_ident = threading.get_ident
_get_tracing_state = torch._C._get_tracing_state
_MAX_CLASSES = 4096   # module classes remembered while learning (bounded even for generated classes)


class ModuleCalls:
    """The outermost module call of the script's thread, and the eval-mode forward being watched."""

    def __init__(self, prof: Profiler, gate: Gate, steps: StepTracker, optimizers: OptimizerCalls,
                 hygiene: Hygiene, changes: RunChanges) -> None:
        self._prof, self._gate, self._steps = prof, gate, steps
        self._optimizers, self._hygiene, self._changes = optimizers, hygiene, changes
        self.active = False                      # an outermost call is running (read by other hooks)
        self._frame: Any = None
        self._eval_mode_module: torch.nn.Module | None = None
        self._script_amp = "fp32"     # the script's own autocast: what its training forwards ran in
        self._amp_inside = False      # ... entered (or turned off) inside the outermost call
        self._outer_amp = "fp32"      # this training call's autocast at its entry
        self._inner_amp: str | None = None   # and at its first nested module call (learning steps only)
        self._learned_inside: dict[str, str] = {}   # outer -> inner, learnt while nested calls were seen
        self._training_call = False
        self._outermost: set[type] = set()
        self._nested: set[type] = set()
        self._learning_steps = max(1, prof.warmup_steps)
        self._patcher: Patcher | None = None
        self._original: Callable[..., Any] | None = None
        self._wrapper: Callable[..., Any] | None = None

    def install(self, p: Patcher) -> None:
        """``nn.Module.__call__`` (and its name ``_wrapped_call_impl``, which pickle looks up) becomes a
        ``_bypass.Around`` where the C helper runs: no frame of ours while a module runs, so a script's
        traceback and a warning's ``stacklevel`` from inside a forward read as in a plain run. The Python
        wrapper where it does not, and from the first compile start on (``Patcher.set_frameless``)."""
        hide_calls(self.enter, self.exit, self.nested, self.opens, self.closes)
        orig = torch.nn.Module.__call__
        self._patcher, self._original = p, orig
        opens, exit_ = self.opens, self.exit

        # ``module`` positional-only: a forward may take a keyword argument of that name
        def __call__(module: torch.nn.Module, /, *args: Any, **kwargs: Any) -> Any:
            if not opens(module, *args, **kwargs):
                return orig(module, *args, **kwargs)
            try:
                return orig(module, *args, **kwargs)
            finally:
                exit_()
        in_python = transparent(orig, __call__)
        in_c = frameless(orig, opens, self.closes)
        # pickle finds a function by its qualified name (Module._wrapped_call_impl): that name must
        # lead to the wrapper too, or pickle.dumps(nn.Module.__call__) fails under the profiler
        names = ("__call__", getattr(orig, "__name__", "__call__"))
        self._wrapper = p.set_frameless(torch.nn.Module, names, in_c, in_python, swapped=self._python_wrapper)

    def _python_wrapper(self) -> None:
        """The Python wrapper replaced the C one: classes bypassed from now on skip that one."""
        self._wrapper = torch.nn.Module.__dict__["__call__"]

    def opens(self, module: torch.nn.Module, /, *args: Any, **kwargs: Any) -> bool | None:
        """Before a module call: True when it is the outermost of the script's thread and its phase is
        now open (``closes`` ends it), None when it is not timed (nested, compiling, tracing, another
        thread, recording off)."""
        gate = self._gate
        if is_compiling() or not gate.open or _get_ident() != gate.thread:
            return None
        if self.active:
            if self._learning_steps:
                self.nested(module)
            return None
        if _tracing():
            return None
        self.enter(module, args or kwargs)
        return True

    def closes(self, _opened: object) -> None:
        """After a timed module call, whether it returned or raised."""
        self.exit()

    def enter(self, module: torch.nn.Module, args: Any) -> None:
        grad = torch.is_grad_enabled()
        training = grad and module.training
        self.active = True
        if self._learning_steps and len(self._outermost) < _MAX_CLASSES:
            self._outermost.add(type(module))
        self._frame = self._prof.open_phase("forward" if training else "eval")
        if training:
            self._train_forward(module, args)
        elif grad:  # eval mode with grad on: evaluation, or a model left in eval mode by mistake
            self._eval_mode_module = module
            self._steps.eval_forward(grad_enabled=True)
        else:
            self._steps.eval_forward(grad_enabled=False)
            self._hygiene.eval_forward(module, grad)

    def _train_forward(self, module: torch.nn.Module, args: Any) -> None:
        self._eval_mode_module = None
        steps, hygiene = self._steps, self._hygiene
        stats = None
        if steps.train_forward() and hygiene.scan(module).has_parameters:
            stats = steps.argument_batch(args, in_optimizer_step=self._optimizers.active)
        if hygiene.needs_batch_size(module):
            if stats is None:
                from throughput.capture.batch import describe_batch
                stats = describe_batch(args, count_padding=False)
            hygiene.train_forward(module, stats.samples)
        if self._changes.autocasts:
            self._changes.enter_training_forward(module)
        # read with --set amp's autocast entered: what the model is called under
        self._outer_amp, self._inner_amp, self._training_call = script_autocast(), None, True

    def exit(self) -> None:
        self.active = False
        if self._training_call:
            self._training_call = False
            self._note_precision()
        if self._changes.autocasts:
            self._changes.leave_forward()
        frame, self._frame = self._frame, None
        self._prof.close_phase(frame)
        self._steps.end_deferred()

    def nested(self, module: torch.nn.Module) -> None:
        """A call inside the outermost one: remembered while the first steps are learnt (and the autocast
        the model's modules run under, read at the first one of a training call)."""
        if len(self._nested) < _MAX_CLASSES:
            self._nested.add(type(module))
        if self._training_call and self._inner_amp is None:
            self._inner_amp = script_autocast()

    def _note_precision(self) -> None:
        """After a training call: the precision its modules ran in, an event when it changes. Read inside
        the model where a nested call was seen (Accelerate's ``prepare`` and the HF Trainer enter their
        autocast in the model's forward; a model may turn the script's off), else at the outermost call;
        what was learnt inside holds for the later steps, whose nested calls are bypassed."""
        outer, inner = self._outer_amp, self._inner_amp
        if inner is None and outer == self._script_amp and not self._learned_inside:
            return   # the usual step: nothing new (a few attribute reads, once a training call)
        if inner is not None and len(self._learned_inside) < 8:
            self._learned_inside[outer] = inner
        amp = inner if inner is not None else self._learned_inside.get(outer, outer)
        inside = amp != outer
        if amp != self._script_amp or inside != self._amp_inside:
            self._script_amp, self._amp_inside = amp, inside
            self._prof.event("context", "autocast", script_amp=amp, autocast_inside=inside)

    def take_eval_mode_module(self) -> torch.nn.Module | None:
        """The module whose eval-mode forward (grad on) a backward now follows, if any."""
        module, self._eval_mode_module = self._eval_mode_module, None
        return module

    def step_ended(self) -> None:
        """After each step: once the learning steps are over, bypass the classes seen only nested."""
        if not self._learning_steps:
            return
        self._learning_steps -= 1
        if not self._learning_steps:
            self._steps.stop_calling(self.step_ended)
            self._bypass_nested_classes()

    def _bypass_nested_classes(self) -> None:
        p, orig, wrapper = self._patcher, self._original, self._wrapper
        nested, self._nested, self._outermost = self._nested - self._outermost, set(), set()
        bypass_type = bypass_class()
        if p is None or orig is None or wrapper is None or bypass_type is None or _compiled_anything():
            return
        bypass = bypass_type(orig, torch.nn.Module, wrapper)
        bypassed: list[type] = []
        for cls in nested:
            # only classes that inherit Module's __call__ unchanged (a class with its own keeps it)
            if all("__call__" not in vars(c) for c in cls.__mro__[:cls.__mro__.index(torch.nn.Module)]):
                try:
                    p.set(cls, "__call__", bypass)
                except (TypeError, AttributeError):  # an exotic metaclass: leave it on the wrapper
                    continue
                bypassed.append(cls)
        if bypassed:
            _undo_on_compile(p, bypassed)


def _undo_on_compile(p: Patcher, bypassed: list[type]) -> None:
    """When torch.compile starts compiling anything, every class gets nn.Module's ``__call__`` back
    (the wrapper): Dynamo reads a class's ``__call__`` from the class and guards on what its dict holds,
    and would compile against the bypass (guards on a closure it does not have: an internal error).
    It then compiles what it would compile had the learning steps bypassed nothing."""
    def undo() -> None:
        while bypassed:
            p.revert(bypassed.pop(), "__call__")
    p.when_compiling_starts(undo)


def bypass_class() -> Any:
    """``_bypass.Bypass`` where the C helper runs, else None (no class is bypassed)."""
    return bypass_type("Bypass")


_AMP_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}
_any_autocast = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)


def script_autocast() -> str:
    """The autocast in force now (at a training call, with ``--set amp``'s entered): ``bf16``,
    ``fp16`` (another dtype by its torch name) or ``fp32`` when none is on, CUDA's first."""
    if not _any_autocast():   # one C call on the usual path (no autocast at all)
        return "fp32"
    for device_type in ("cuda", "cpu"):
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
            return _AMP_NAMES.get(dtype, str(dtype).removeprefix("torch."))
    return "fp32"


def _tracing() -> bool:
    """Is ``torch.jit.trace`` or ``torch.fx`` tracing (the call's arguments are its tracer values)?"""
    if _get_tracing_state() is not None:
        return True
    fx = sys.modules.get("torch.fx._symbolic_trace")
    return bool(getattr(fx, "_is_fx_tracing_flag", False))


def _compiled_anything() -> bool:
    dynamo = sys.modules.get("torch._dynamo.utils")
    counters = getattr(dynamo, "counters", None)
    return bool(counters and counters.get("frames", {}).get("total", 0))
