"""Probe a training-loop recipe in this process: ``WorkloadTarget`` over ``build_model`` / ``build_datasets``
/ ``loss_fn`` (see throughput/loop/recipe.py for the contract). Needs the training loop package."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from throughput.advisor.trials import Config
from throughput.advisor.workload import Workload, WorkloadTarget, make_loader
from throughput.loop.config import TrainConfig
from throughput.loop.recipe import Recipe, load_recipe, model_fingerprint

# Keys the in-process probes apply to a recipe (a subset of the loop's knobs: the search's).
RECIPE_KEYS = frozenset({"micro_batch_size", "grad_accum", "amp", "num_workers", "pin_memory",
                         "persistent_workers", "prefetch_factor", "seed", "compile", "tf32"})


def _train_config(recipe: Recipe, config: Config) -> TrainConfig:
    known = {f for f in TrainConfig.__dataclass_fields__}
    values = {**recipe.config, **{k: v for k, v in config.items() if k in known}}
    return TrainConfig().with_overrides(values)


def _loss(recipe: Recipe) -> Any:
    def loss(model: torch.nn.Module, batch: Any) -> torch.Tensor:
        out = recipe.loss_fn(model, batch)
        if isinstance(out, tuple):          # (loss_sum, n_loss_tokens) -> mean loss
            total, n = out
            return total / max(1, int(n))
        return out
    return loss


def build_from_recipe(recipe: Recipe, config: Config) -> Workload:
    cfg = _train_config(recipe, config)
    model = recipe.make_model(cfg)
    train, _ = recipe.make_datasets(cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    extra = {"collate_fn": recipe.collate_fn} if recipe.collate_fn else {}
    loader = make_loader(train, config, shuffle=True, **extra)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    return Workload(model=model, optimizer=opt, loader=loader, loss_fn=_loss(recipe), device=device)


_LOADED: dict[str, Recipe] = {}     # recipe file -> recipe, per process (a probe child loads it once)


def build_from_recipe_file(source: str, config: Config) -> Workload:
    """``build_from_recipe`` for the recipe in file ``source``: picklable by name, so that probes can run
    in fresh child processes (``throughput.advisor.isolate``), which import the recipe file themselves."""
    if source not in _LOADED:
        _LOADED[source] = load_recipe(source)
    return build_from_recipe(_LOADED[source], config)


class RecipeTarget(WorkloadTarget):
    supported = RECIPE_KEYS

    def __init__(self, recipe: Recipe, **kwargs: Any) -> None:
        if recipe.source and Path(recipe.source).is_file():
            _LOADED[recipe.source] = recipe
            build: Any = functools.partial(build_from_recipe_file, recipe.source)
        else:                       # a recipe object without a file: probes run in this process
            build = lambda config: build_from_recipe(recipe, config)  # noqa: E731
        super().__init__(build, **kwargs)
        self.recipe = recipe

    def measure_checkpoint_s(self, config: Mapping[str, object]) -> float:
        """Seconds to save the real model and optimizer state (after one step, so Adam state exists) to a
        temporary file with fsync: the delta of Young/Daly. The file is deleted."""
        w = self.build(config)
        batch = next(iter(w.loader))
        self.run_step(w, batch)
        with tempfile.TemporaryDirectory(prefix="throughput-ckpt-") as d:
            path = Path(d) / "probe.pt"
            t0 = time.perf_counter()
            with open(path, "wb") as f:
                torch.save({"model": w.model.state_dict(), "optimizer": w.optimizer.state_dict()}, f)
                f.flush()
                os.fsync(f.fileno())
            return time.perf_counter() - t0

    @staticmethod
    def run_step(w: Workload, batch: Any) -> None:
        from throughput.advisor.workload import _to_device
        w.loss_fn(w.model, _to_device(batch, w.device)).backward()
        w.optimizer.step()
        w.optimizer.zero_grad(set_to_none=True)


def observed_lengths(recipe: Recipe, limit: int = 1024) -> list[int]:
    """Sequence lengths of the first ``limit`` training samples (1-D tensors or lists, or a dict's
    ``input_ids``); empty when the samples are not sequences."""
    train, _ = recipe.make_datasets(_train_config(recipe, {}))
    lengths: list[int] = []
    try:
        n = min(limit, len(train))
    except TypeError:
        return lengths
    for i in range(n):
        item = train[i]
        seq = item.get("input_ids") if isinstance(item, dict) else item
        if isinstance(seq, torch.Tensor) and seq.dim() == 1 or isinstance(seq, list):
            lengths.append(len(seq))
        else:
            return []
    return lengths


def recipe_target(path: str | os.PathLike[str]) -> tuple[RecipeTarget, str, dict[str, Any]]:
    """(target, model fingerprint, the recipe's whole TrainConfig as a dict, ``amp`` resolved the way
    the loop resolves ``auto`` on this machine)."""
    recipe = load_recipe(Path(path))
    cfg = _train_config(recipe, {})
    fingerprint = model_fingerprint(recipe.make_model(cfg))
    values = cfg.to_dict()
    if values["amp"] == "auto":
        from throughput.advisor.workload import precision_here
        values["amp"] = "bf16" if torch.cuda.is_available() and precision_here().reduced == "bf16" else "fp32"
    return RecipeTarget(recipe), fingerprint, values


def split_check(recipe: Recipe) -> Any:
    """For a recipe whose training set is an IterableDataset: do loader workers split it?
    (``stream_check.check_in_process`` over the loop's own DataLoader form.) None for map-style sets."""
    from throughput.advisor.stream_check import check_in_process
    cfg = _train_config(recipe, {})
    train, _ = recipe.make_datasets(cfg)
    if not isinstance(train, torch.utils.data.IterableDataset):
        return None
    return check_in_process(lambda workers: torch.utils.data.DataLoader(
        train, batch_size=cfg.micro_batch_size, drop_last=True, num_workers=workers,
        collate_fn=recipe.collate_fn))
