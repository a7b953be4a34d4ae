"""Training-hygiene observations made by the zero-code hooks, recorded as ``Profiler.event``s.

Each kind is recorded once per run (the first time it is seen) so a long run does not flood the
session. Analysis (``analysis/findings.py``) turns them into findings with the change to make.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch

from throughput.capture.profiler import Profiler

from throughput.thresholds import BN_MIN_BATCH  # below it, BatchNorm statistics are noisy
_MAX_SCANS = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelScan:
    """What a model contains that makes its train/eval mode matter."""

    name: str
    batchnorm: int
    dropout: int
    has_parameters: bool

    @property
    def mode_sensitive(self) -> bool:
        return bool(self.batchnorm or self.dropout)


class Hygiene:
    """Checks run from the forward and backward hooks; cheap after the first call per model."""

    def __init__(self, prof: Profiler) -> None:
        self._prof = prof
        self._scans: dict[int, tuple[weakref.ReferenceType[torch.nn.Module], ModelScan]] = {}
        self._seen: set[str] = set()

    def scan(self, module: torch.nn.Module) -> ModelScan:
        entry = self._scans.get(id(module))
        if entry is not None and entry[0]() is module:
            return entry[1]
        if len(self._scans) > _MAX_SCANS:  # modules built per step (loss modules): forget old ones
            self._scans.clear()
        bn = dropout = 0
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                bn += 1
            elif isinstance(m, torch.nn.modules.dropout._DropoutNd):
                dropout += 1
        has_parameters = next(module.parameters(), None) is not None
        result = ModelScan(name=type(module).__name__, batchnorm=bn, dropout=dropout,
                           has_parameters=has_parameters)
        self._scans[id(module)] = (weakref.ref(module), result)
        return result

    def needs_batch_size(self, module: torch.nn.Module) -> bool:
        return "bn_small_batch" not in self._seen and self.scan(module).batchnorm > 0

    def train_forward(self, module: torch.nn.Module, samples: int | None) -> None:
        """A forward with grad enabled and the model in train mode."""
        if samples is None or samples >= BN_MIN_BATCH or not self.needs_batch_size(module):
            return
        scan = self.scan(module)
        self._once("bn_small_batch",
                   f"{scan.name} has {scan.batchnorm} BatchNorm layer(s) and trains on batches of {samples} "
                   f"per device (< {BN_MIN_BATCH}): batch statistics are noisy",
                   samples=samples, batchnorm_layers=scan.batchnorm, threshold=BN_MIN_BATCH)

    def trained_in_eval_mode(self, module: torch.nn.Module) -> None:
        """backward() ran on a forward made while the model was in eval mode."""
        scan = self.scan(module)
        if not scan.mode_sensitive:
            return
        self._once("eval_mode_training",
                   f"{scan.name} was in eval mode during a forward that was back-propagated: its "
                   f"{scan.batchnorm} BatchNorm and {scan.dropout} dropout layer(s) did not train",
                   batchnorm_layers=scan.batchnorm, dropout_layers=scan.dropout)

    def eval_forward(self, module: torch.nn.Module, grad_enabled: bool) -> None:
        """A forward classified as evaluation; flags eval forwards made in train mode."""
        if grad_enabled or not module.training:
            return
        scan = self.scan(module)
        if scan.mode_sensitive:
            self._once("eval_in_train_mode",
                       f"{scan.name} ran a forward under no_grad/inference_mode while in train mode: if this is "
                       f"evaluation, its {scan.dropout} dropout and {scan.batchnorm} BatchNorm layer(s) behave "
                       "as in training (and BatchNorm running statistics are updated)",
                       batchnorm_layers=scan.batchnorm, dropout_layers=scan.dropout)

    def _once(self, kind: str, message: str, **detail: Any) -> None:
        if kind in self._seen:
            return
        self._seen.add(kind)
        self._prof.event(kind, message, **detail)
