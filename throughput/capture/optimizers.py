"""The ``optimizer`` phase and the step boundary: torch.optim's global step hooks, and construction.

Every ``torch.optim.Optimizer.step`` (subclasses and optimizers built inside libraries included) runs
the global step pre/post hooks; the post hook of the update that completes a round of the optimizers'
turns ends a step (``cycle.UpdateCycle``: with one optimizer, each of its updates). Construction is
counted (``Optimizer.__init__`` is wrapped) so that a script without any optimizer falls back to one
step per backward. Under torch.compile the hooks are traced as no-ops: a compiled ``step()`` runs as
a graph, so its time is not attributed and it ends no step.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any, Callable

import torch
import torch.optim.optimizer as _optim_mod

from throughput.capture.compiler import hide_calls, is_compiling
from throughput.capture.cycle import MAX_ROUND, UpdateCycle
from throughput.capture.gate import Gate
from throughput.capture.patching import Patcher, mark, transparent
from throughput.capture.profiler import Profiler
from throughput.capture.stepping import StepTracker
from throughput.session.records import StepRule

_MAX_NAMED = 64   # optimizers whose class is remembered for the report (a script may build one per step)
_MAX_NOTED = 8    # steps named in the note on orders learned anew


class OptimizerCalls:
    """Optimizer steps in progress, which optimizer's updates are steps, and the optimizers seen."""

    def __init__(self, prof: Profiler, gate: Gate, steps: StepTracker) -> None:
        self._prof, self._gate, self._steps = prof, gate, steps
        self._frames: list[tuple[int, Any]] = []   # (id(optimizer), phase token), outermost first
        self.cycle = UpdateCycle()
        self._backwards_seen = 0      # the step tracker's backward count at the last update
        self._turn_had_backward = False
        self.relearned_at: list[int] = []   # indexes of steps that held the updates of an order being learned
        self._names: dict[int, str] = {}
        self.created = 0
        self.updates = 0        # post hooks seen (any optimizer): a GradScaler's skipped update adds none
        self.active = False     # is an optimizer step (of any optimizer) open? Kept equal to bool(_frames)
        self._closure_backwards = 0   # backwards run inside the open step's closure

    def install(self, p: Patcher) -> None:
        hide_calls(self.pre_hook, self.post_hook, self.recover)
        p.keep(_optim_mod.register_optimizer_step_pre_hook(mark(self.pre_hook)))
        p.keep(_optim_mod.register_optimizer_step_post_hook(mark(self.post_hook)))
        p.set(torch.optim.Optimizer, "__init__", self._wrap_init(torch.optim.Optimizer.__init__))

    @property
    def names(self) -> list[str]:
        """The classes of the optimizers that stepped, sorted."""
        return sorted(set(self._names.values()))

    def _wrap_init(self, orig: Callable[..., None]) -> Callable[..., None]:
        gate = self._gate

        def __init__(opt: Any, *args: Any, **kwargs: Any) -> None:
            orig(opt, *args, **kwargs)
            if not is_compiling() and gate.allows():
                self.created += 1
        return transparent(orig, __init__)

    def pre_hook(self, opt: Any, args: Any, kwargs: Any) -> tuple[Any, Any] | None:
        if is_compiling() or not self._gate.allows():
            return None
        oid = id(opt)
        if any(o == oid for o, _ in self._frames):
            self.recover(oid)  # its previous step raised, so the post hook never ran
        if not self._frames:
            self._closure_backwards = 0
        self._frames.append((oid, self._prof.open_phase("optimizer")))
        self.active = True
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        if closure is None or not callable(closure):
            return None
        outside = self._outside_the_phase(closure, len(self._frames) - 1)
        return ((*args[:1], outside, *args[2:]), kwargs) if len(args) > 1 else (args, {**kwargs, "closure": outside})

    def _outside_the_phase(self, closure: Callable[..., Any], at: int) -> Callable[..., Any]:
        """``closure`` run with this step's optimizer phase closed, reopened when it returns or raises.

        A closure re-evaluates the model: its forward and backward are their own phases, the code around
        them (a framework's ``training_step``, its logging and hooks) is the step's ``other``, and only the
        update itself is the optimizer's. Lightning runs every ``training_step`` inside
        ``optimizer.step(closure)``: booked to "optimizer", that was half of a small model's step and an
        optimizer-bound verdict where Adam itself took 11% (LBFGS calls its closure several times: each
        call is paused alike). The optimizer gets this function in the closure's place; its result and
        exceptions are the closure's, and ``__wrapped__`` names the closure."""
        frames, prof = self._frames, self._prof

        def closure_outside_the_optimizer_phase(*a: Any, **k: Any) -> Any:
            entry = frames[at] if at < len(frames) else None
            if entry is None or entry[1] is None:
                return closure(*a, **k)
            prof.recorder.close_through(entry[1])
            frames[at] = (entry[0], None)
            try:
                return closure(*a, **k)
            finally:
                if at < len(frames) and frames[at][0] == entry[0] and frames[at][1] is None:
                    frames[at] = (entry[0], prof.open_phase("optimizer"))

        closure_outside_the_optimizer_phase.__wrapped__ = closure  # type: ignore[attr-defined]  # for introspection
        return closure_outside_the_optimizer_phase

    def post_hook(self, opt: Any, args: Any, kwargs: Any) -> None:
        if is_compiling() or not self._gate.allows() or not self._frames:
            return None
        self.updates += 1
        oid = id(opt)
        if self._frames[-1][0] != oid:
            self.recover(oid)
            return None
        _, frame = self._frames.pop()
        self.active = bool(self._frames)
        self._prof.close_phase(frame)
        if not self._frames:
            self._updated(opt)
        return None

    def _named(self, opt: Any) -> int:
        """``opt``'s ``turn_key``; the first update of each (up to ``_MAX_NAMED``) is a context event."""
        key = turn_key(opt)
        if key not in self._names and len(self._names) < _MAX_NAMED:
            self._names[key] = type(opt).__name__
            self._prof.event("context", f"optimizer {type(opt).__name__}", **optimizer_context(opt))
        return key

    def _updated(self, opt: Any) -> None:
        """An outermost update finished: end the step if it completes a round of turns.

        An update with no backward since the previous one, which had one, is that iteration's second
        optimizer (two parameter groups, each with its own optimizer): not a turn of its own, so it
        ends no step. A script with no backward at all (``torch.autograd.grad``) takes every update as
        a turn."""
        oid = self._named(opt)
        backwards = self._steps.backwards
        had_backward = backwards != self._backwards_seen
        self._backwards_seen = backwards
        if not had_backward and self._turn_had_backward:
            return   # the previous turn's companion: the step state is the previous turn's
        self._turn_had_backward = had_backward
        was_learning = self.cycle.learning
        if self.cycle.stepped(oid):
            self._steps.end(StepRule.OPTIMIZER)
            return
        self._steps.updated()
        if self.cycle.learning and not was_learning:
            self._learning_began()

    def _learning_began(self) -> None:
        """Several optimizers update in an order not learned yet: no step ends until it is, so the step
        now open will hold the updates made meanwhile, and steps ended before may have held part of a
        round (a WGAN's first five critic updates each ended one). At the start of a run (within the
        longest round's count of steps, and before a measured step was counted) these steps are made
        warm-up, kept apart from the measured figures; later (a script that moved on to other optimizers)
        the step is named in a note instead."""
        through = self._prof.steps_done + 1
        if through <= MAX_ROUND and self._prof.extend_warmup(through):
            return   # early: the steps so far can all be parts of the first round (at most MAX_ROUND turns)
        if len(self.relearned_at) < _MAX_NOTED:
            self.relearned_at.append(through - 1)   # the step now open, by its index (0-based, as reported)

    def recover(self, oid: int | None = None) -> None:
        """Close the phases of steps that raised (up to ``oid``'s; all of them when None)."""
        while self._frames:
            o, frame = self._frames.pop()
            self.active = bool(self._frames)
            if frame is not None:
                self._prof.recorder.close_through(frame)
            if o == oid:
                return

    def backward_in_step(self) -> bool:
        """A backward ran while a step is open: True for a closure (LBFGS), which belongs to the
        step; otherwise the open step raised and was caught, and its phases are closed here."""
        if optimizer_step_running():
            return True
        self.recover(self._frames[0][0])
        return False

    def first_closure_backward(self) -> bool:
        """For a backward inside the step's closure: True for the first one of this step, a micro-batch
        of its own (Lightning runs the last micro-batch of an accumulation window inside
        ``step(closure)``, the others as plain calls); False for the re-evaluations that follow
        (LBFGS calls its closure several times on the same batch)."""
        self._closure_backwards += 1
        return self._closure_backwards == 1

    def skipped(self, opt: Any) -> None:
        """A GradScaler skipped ``opt``'s update (no hooks ran). One optimizer: no update, so no step
        (``StepTracker.update_skipped``). Several taking turns: its turn passes as if it had updated, and
        a round that made an update still ends its step."""
        turns = self.takes_turns
        if self.cycle.skipped(turn_key(opt)):
            self._steps.end(StepRule.OPTIMIZER)
        elif turns:
            self._steps.updated()
        else:
            self._steps.update_skipped()

    @property
    def takes_turns(self) -> bool:
        """Several optimizers' updates take turns in a learned round."""
        return len(self.cycle.round or ()) > 1

    @property
    def stepped_count(self) -> int:
        """How many distinct optimizers updated, by the parameters they update (``turn_key``; counted up
        to the cap on remembered ones)."""
        return len(self._names)

    @property
    def round_names(self) -> tuple[str, ...]:
        """The classes of the optimizers in the learned round, in turn order (empty while learning)."""
        rnd = self.cycle.round or ()
        return tuple(self._names.get(oid, "optimizer") for oid in rnd)


def turn_key(opt: Any) -> int:
    """Which optimizer takes a turn, as the rounds know it: the id of the first parameter it updates, so
    that an optimizer built anew every iteration or epoch over the same model is the same one (keyed by
    the optimizer object, each new one broke the learned round: a script building its SGD inside the loop
    kept one step of 40 updates). ``id(opt)`` for an optimizer without parameters."""
    try:
        return id(opt.param_groups[0]["params"][0])
    except (AttributeError, IndexError, KeyError, TypeError):
        return id(opt)


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
