"""Where zero-code steps begin and end, and what each one trained on.

A step is one round of optimizer updates (one update with one optimizer; ``cycle.UpdateCycle``), or,
with no torch.optim optimizer, one backward. The ``StepTracker`` keeps what the current step has seen:
batches fetched from DataLoaders and not yet trained on, the batches trained on, micro-steps (backward
calls), the loss; and it closes the step on the Profiler, or defers the close while a phase is open (an
optimizer stepped inside a forward). With several optimizers taking turns (a GAN), the loss and the
micro-steps are those before the round's first update (the first objective's): a backward after an
update of the same step is another objective's, and the step is counted as alternating.
What caps its lists: a step's batches and counted argument tensors (at most 64), emptied at every step end.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from throughput.capture.batch import BatchStats, describe_batch
from throughput.capture.gate import Gate
from throughput.capture.profiler import Profiler
from throughput.capture.steps import add_loss, keep_loss, sum_field
from throughput.session.records import StepRule


class MaxStepsReached(BaseException):
    """Raised from a step hook once ``max_steps`` steps are done; the runner catches it.

    A BaseException so that a script's ``except Exception`` does not swallow it."""


class StepTracker:
    """The current step's batches, micro-steps and loss, and the step boundaries."""

    def __init__(self, prof: Profiler, gate: Gate, max_steps: int | None = None) -> None:
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self._prof = prof
        self._gate = gate
        self._max_steps = max_steps
        self._fetched: list[BatchStats] = []       # fetched, not yet trained on
        self._held: list[BatchStats] = []          # fetched before an eval-mode forward with grad on
        self._trained: list[BatchStats] = []
        self._closure: BatchStats | None = None    # LBFGS re-evaluates one batch: counted once
        self._loader_used = False                  # a DataLoader batch fed this step
        self._loader_fed_last = False              # and the step before
        self._last_fed: list[BatchStats] = []      # the last fed step's batches
        self._inputs: list[tuple[Any, int]] = []   # this step's counted argument tensors and their versions
        self._argument_counted = False             # manual batching: this micro-step's batch is counted
        self._micro = 0
        self._loss: Any = None
        self._pending: StepRule | None = None
        self._updated = False                      # an optimizer updated in this step, which goes on
        self._alternated = False                   # and a backward followed that update
        self.backwards = 0                         # backward calls seen (read by the optimizer hooks)
        self.alternating_steps = 0                 # steps whose backwards came on both sides of an update
        self.by_rule = {StepRule.OPTIMIZER: 0, StepRule.BACKWARD: 0}
        self._listeners: list[Callable[[], None]] = []

    def after_each_step(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every step this tracker ends (until ``stop_calling``)."""
        self._listeners.append(listener)

    def stop_calling(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- batches --------------------------------------------------------------------------------
    def fetched(self, stats: BatchStats) -> None:
        """A DataLoader yielded a training batch."""
        self._fetched.append(stats)

    def train_forward(self) -> bool:
        """A training forward starts: the batches fetched for it are trained on. Returns
        ``needs_argument_batch()`` (one call instead of two on the hot path)."""
        self._held = []
        if self._fetched:
            self._commit()
        return not (self._loader_used or self._loader_fed_last or self._argument_counted or self._updated)

    def needs_argument_batch(self) -> bool:
        """Manual batching (no DataLoader batch in this step or the last): is this micro-step's batch still
        to be read? Not after an update of this step: a later turn (a GAN's generator on noise) trains on
        no new samples."""
        return not (self._loader_used or self._loader_fed_last or self._argument_counted or self._updated)

    def argument_batch(self, args: Any, in_optimizer_step: bool) -> BatchStats:
        """Count the first tensor argument of a model's (not a loss module's) first forward in this
        micro-step as its batch; returns what was read."""
        stats = describe_batch(args, count_padding=False)
        self._argument_counted = True
        first = _first_tensor(args)
        if first is not None:
            # the same tensor with the same contents (its version counter: a static buffer refilled
            # with copy_() is a new batch) is the same batch again in this step: SAM's second pass,
            # two losses with a backward each
            version = first._version if type(first) is torch.Tensor else _version_of(first)
            if any(first is seen and version == v for seen, v in self._inputs):
                return stats
            if len(self._inputs) < _MAX_INPUTS:
                self._inputs.append((first, version))
        if not in_optimizer_step:
            self._trained.append(stats)
        elif self._closure is None:
            self._closure = stats
        return stats

    def eval_forward(self, grad_enabled: bool) -> None:
        """An evaluation forward: its batches are not training samples. With grad on (a model left in
        eval mode?) they are held until a backward shows they were trained on after all."""
        if grad_enabled:
            self._held, self._fetched = self._fetched, []
        else:
            self._fetched.clear()

    def backward(self, loss: Any, trained_in_eval_mode: bool, counted: bool = True) -> None:
        """A backward ran. ``counted``: False for a closure's re-evaluation (LBFGS), whose loss is not a
        micro-batch of its own. Under gradient accumulation the step's loss is the sum of the counted
        losses passed to backward (``steps.add_loss``)."""
        self._argument_counted = False
        self.backwards += 1
        if self._updated:
            self._alternated = True
            counted = False
        if trained_in_eval_mode:
            self._fetched.extend(self._held)
        self._held = []
        if self._fetched:
            self._commit()
        if counted:
            self._loss = add_loss(self._loss, _scalar(loss))

    def micro_step(self) -> None:
        if not self._updated:
            self._micro += 1

    def updated(self) -> None:
        """An optimizer updated and the step goes on (another optimizer's turn is still to come)."""
        self._updated = True

    def update_skipped(self) -> None:
        """A GradScaler skipped this iteration's update (inf/NaN gradients): no step ends. Its loss and
        micro-steps made no update, so they are dropped (the step's are those of the update it makes);
        its time and its samples stay in the step that follows (both were spent: samples/s counts them
        alike)."""
        self._micro, self._loss = 0, None
        self._argument_counted = False

    def _commit(self) -> None:
        self._trained.extend(self._fetched)
        self._fetched.clear()
        self._loader_used = True

    # -- boundaries -----------------------------------------------------------------------------
    def end(self, rule: StepRule) -> None:
        """Close the step now, or as soon as no phase is open. Raises MaxStepsReached at the limit."""
        if self._prof.recorder.depth:  # e.g. optimizer.step() called inside a module's forward
            self._pending = rule
            return
        self._pending = None
        if self._fetched:
            self._commit()
        stats = self._trained or ([self._closure] if self._closure else [])
        if not stats and self._loader_fed_last and not self._loader_used:
            # Fed by none after a fed step: the loader's batches came in earlier steps (a look-ahead
            # fetch, as HF's Trainer and Accelerate do one batch ahead; a generator's turn on noise), so
            # it adds no samples: 0, not unknown (one unknown step left the run without samples/s).
            stats = [_zeros_where_known(self._last_fed)]
        self._prof.step(samples=sum_field(stats, "samples"), tokens=sum_field(stats, "tokens"),
                        padding_tokens=sum_field(stats, "padding_tokens"), loss=self._loss,
                        micro_steps=max(1, self._micro))
        if self._loader_used and stats:   # what a fed step knew (read only at a step fed by none after it)
            self._last_fed = stats
        self.by_rule[rule] += 1
        self.alternating_steps += self._alternated
        self._trained, self._closure, self._micro, self._loss, self._held = [], None, 0, None, []
        self._inputs.clear()
        self._updated = self._alternated = False
        # Which source counts samples is decided per step: a step with no DataLoader batch, after one
        # with none either, reads its forward's argument (batches replayed from a list or by
        # itertools.cycle after one pass of the loader). One step of grace: before a GAN's round is
        # learned, its generator's turn is a step of its own, on noise, right after the fed one.
        self._loader_fed_last, self._loader_used = self._loader_used, False
        self._argument_counted = False   # also for a loop without backward (torch.autograd.grad)
        for listener in tuple(self._listeners):   # a listener may stop itself
            listener()
        if self._max_steps is not None and self._prof.steps_done >= self._max_steps:
            self._gate.close()
            raise MaxStepsReached(f"--max-steps {self._max_steps} reached")

    def end_deferred(self) -> None:
        """Close a step whose end came while a phase was open, once none is."""
        if self._pending is not None and not self._prof.recorder.depth:
            self.end(self._pending)


_MAX_INPUTS = 64   # argument batches remembered in one step (a step of more micro-steps counts every one)


def _zeros_where_known(stats: list[BatchStats]) -> BatchStats:
    """0 for each count these batches had, None for each they did not."""
    return BatchStats(**{f: None if sum_field(stats, f) is None else 0 for f in ("samples", "tokens", "padding_tokens")})


def _first_tensor(args: Any) -> Any:
    """The first tensor among a forward's arguments (positional, or keyword values), one level deep."""
    items = args.values() if isinstance(args, dict) else args
    for item in items:
        if isinstance(item, torch.Tensor):
            return item
    return None


def _version_of(subclass_tensor: torch.Tensor) -> int:
    """A tensor subclass's version counter, unseen by its ``__torch_function__``."""
    with torch._C.DisableTorchFunctionSubclass():
        return int(subclass_tensor._version)


def _scalar(loss: Any) -> Any:
    """The loss a backward was given, as a step keeps it: one element (``keep_loss``), or the sum of
    several (``torch.autograd.backward([l1, l2])`` back-propagates l1 + l2: the first alone was kept
    before). None when any of them is not a one-element tensor."""
    if isinstance(loss, (list, tuple)):
        total = None
        for item in loss:
            value = _scalar(item)
            if value is None:
                return None
            total = add_loss(total, value)
        return total
    if type(loss) is torch.Tensor:
        return keep_loss(loss) if loss.numel() == 1 else None  # CPU: read now; device: kept detached
    if isinstance(loss, torch.Tensor):   # a subclass: its __torch_function__ must not see our reads
        with torch._C.DisableTorchFunctionSubclass():
            return keep_loss(loss) if loss.numel() == 1 else None
    return None

