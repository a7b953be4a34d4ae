"""Zero-code instrumentation: phases and steps from an unmodified training script.

``Instrumentation(prof).install()`` patches torch for the run and ``remove()`` restores every patched
attribute and hook. What becomes which phase, and which object owns it:

- ``data``: waiting in ``_BaseDataLoaderIter.__next__`` (``loaders.LoaderCalls``); a wait made with
  grad disabled (an evaluation loop) counts as ``eval``.
- ``forward``/``eval``: the outermost ``nn.Module`` call (``forward.ModuleCalls``); ``eval`` when
  grad is disabled or the module is in eval mode.
- ``backward``: ``Tensor.backward`` / ``torch.autograd.backward``, outermost (``backward.BackwardCalls``).
- ``optimizer``: ``step`` of any ``torch.optim.Optimizer`` (global step hooks, ``optimizers.OptimizerCalls``),
  ``zero_grad`` and ``clip_grad_norm_`` (``wrappers.AuxCalls``). An LBFGS closure nests inside it.
- ``h2d``: ``Tensor.to``/``Tensor.cuda`` from a CPU tensor to another device, outside the model.
- a GradScaler's ``scale(loss)`` is seen through: the step's loss is the unscaled one; an update the
  scaler skipped (inf/NaN gradients) is no step (``scaler.ScalerCalls``).
- ``checkpoint``: ``torch.save``, safetensors' and torch.distributed.checkpoint's saves (``wrappers.SaveCalls``).

Steps (``stepping.StepTracker``): one per update of the primary optimizer (the first one that steps).
When no torch.optim optimizer was ever constructed, each outermost ``backward()`` ends a step instead.
Run-changing overrides are applied by ``apply.RunChanges``, apart from all of this.

Every wrapper keeps the original's signature, names, doc and ``__wrapped__``, and is invisible to
torch.compile (``compiler.py``). Hot path: each wrapper does a compile check, a thread check and a few
attribute reads and, at most, opens and closes one phase through ``Profiler.open_phase``/``close_phase``.
"""

from __future__ import annotations

import os

from throughput.capture.apply import RunChanges
from throughput.capture.backward import BackwardCalls
from throughput.capture.compiler import hide_calls
from throughput.capture.forward import ModuleCalls
from throughput.capture.gate import Gate
from throughput.capture.hygiene import Hygiene
from throughput.capture.loaders import LoaderCalls
from throughput.capture.optimizers import OptimizerCalls
from throughput.capture.outcome import RunFacts, record_outcome
from throughput.capture.overrides import Overrides
from throughput.capture.patching import Patcher
from throughput.capture.profiler import Profiler
from throughput.capture.scaler import ScalerCalls
from throughput.capture.stepping import MaxStepsReached, StepTracker
from throughput.capture.wrappers import AuxCalls, CopyCalls, SaveCalls

__all__ = ["Instrumentation", "MaxStepsReached", "active_instrumentation"]

_current: "Instrumentation | None" = None
_fork_handler_registered = False


def active_instrumentation() -> "Instrumentation | None":
    return _current


class Instrumentation:
    """Installs the hooks that turn a script's torch calls into phases and steps."""

    def __init__(self, prof: Profiler, overrides: Overrides | None = None, max_steps: int | None = None) -> None:
        self.prof = prof
        self.gate = Gate()
        self.changes = RunChanges(overrides)
        self.hygiene = Hygiene(prof)
        self.steps = StepTracker(prof, self.gate, max_steps)
        self.optimizers = OptimizerCalls(prof, self.gate, self.steps)
        self.forward = ModuleCalls(prof, self.gate, self.steps, self.optimizers, self.hygiene, self.changes)
        self.scaler = ScalerCalls(prof, self.gate, self.steps, lambda: self.optimizers.updates,
                                  self.optimizers.skipped)
        self.backward = BackwardCalls(prof, self.gate, self.steps, self.forward, self.optimizers, self.hygiene,
                                      self.scaler)
        self.aux = AuxCalls(prof, self.gate, self.optimizers, self.forward)
        self.saves = SaveCalls(prof, self.gate)
        self.copies = CopyCalls(prof, self.gate, self.forward, self.backward)
        self.loaders = LoaderCalls(prof, self.gate, self.steps, self.changes)
        self.steps.after_each_step(self.forward.step_ended)
        self._patcher = Patcher()

    @property
    def overrides(self) -> Overrides:
        return self.changes.overrides

    # -- lifecycle ------------------------------------------------------------------------------
    def install(self) -> "Instrumentation":
        global _current
        if _current is not None:
            raise RuntimeError("throughput instrumentation is already installed in this process")
        _register_fork_handler()
        self.prof.start()
        hide_calls(Profiler.open_phase, Profiler.close_phase)
        p = self._patcher
        try:
            for part in (self.loaders, self.forward, self.optimizers, self.backward, self.aux, self.saves,
                         self.copies, self.scaler):
                part.install(p)
            self.changes.start()
        except BaseException:
            p.restore()
            self.prof.stop()
            raise
        _current = self
        self.gate.start()
        return self

    def remove(self) -> None:
        """Restore torch, then record the run's step rule, context and notes. Safe to call twice."""
        global _current
        self.gate.close()
        self.changes.stop()
        self._patcher.restore()
        if _current is self:
            _current = None
            if self.loaders.digests is not None:
                self.loaders.digests.flush()   # a run shorter than the digest window still reports
            self.scaler.record(turns=self.optimizers.takes_turns)
            record_outcome(self.prof, self.facts())

    def facts(self) -> RunFacts:
        """What the hooks counted so far."""
        return RunFacts(steps_by_rule=dict(self.steps.by_rule), optimizers_created=self.optimizers.created,
                        backward_calls=self.backward.calls, optimizer_names=tuple(self.optimizers.names),
                        clip_seen=self.aux.clip_seen, optimizers_stepped=self.optimizers.stepped_count,
                        update_round=self.optimizers.round_names, alternating_steps=self.steps.alternating_steps,
                        relearned_at=tuple(self.optimizers.relearned_at),
                        overrides=self.changes.overrides,
                        loaders_built=self.changes.loaders_built, overrides_applied=dict(self.changes.applied))

    def patched(self) -> list[tuple[object, str]]:
        """(owner, attribute) of every attribute patched now (a test compares each with the original)."""
        return self._patcher.targets()

    def mine(self) -> bool:
        """True in the thread (and process) that runs the script, while installed."""
        return self.gate.allows()


def _disable_in_child() -> None:
    """DataLoader workers are forked from the profiled process: they must not record."""
    if _current is not None:
        _current.gate.close()


def _register_fork_handler() -> None:
    global _fork_handler_registered
    if not _fork_handler_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_disable_in_child)
        _fork_handler_registered = True
