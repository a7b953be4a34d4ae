"""The recipe contract: what a user provides so ``throughput train`` can run it.

A recipe is a Python file (or any object with these attributes) defining:

- ``build_model(config) -> torch.nn.Module``              required
- ``build_datasets(config) -> (train, val)``               required; ``val`` may be None. Map-style
  datasets (``__len__`` + ``__getitem__``) resume exactly; iterable ones resume by skipping batches.
- ``loss_fn(model, batch) -> (loss_sum, n_loss_tokens)``   required; or a scalar mean loss
- ``collate_fn(samples) -> batch``                        optional (DataLoader's default otherwise)
- ``count_tokens(batch) -> int``                          optional: loss-bearing tokens of a batch;
  by default ``(batch["labels"] != -100).sum()`` when the batch has labels
- ``config = {"lr": 3e-4, ...}``                           optional: the recipe's own defaults

``build_model`` and ``build_datasets`` may also take no argument. Missing parts raise ``RecipeError``
with one line naming the part and the file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

REQUIRED = ("build_model", "build_datasets", "loss_fn")


class RecipeError(ValueError):
    """A recipe that does not meet the contract (the message names the missing or bad part)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    """A validated recipe. ``name`` identifies it in checkpoints and reports."""

    name: str
    build_model: Callable[..., Any]
    build_datasets: Callable[..., Any]
    loss_fn: Callable[[Any, Any], Any]
    collate_fn: Callable[[list[Any]], Any] | None = None
    count_tokens: Callable[[Any], int] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def make_model(self, config: object) -> Any:
        return _call_maybe_with(self.build_model, config)

    def make_datasets(self, config: object) -> tuple[Any, Any]:
        out = _call_maybe_with(self.build_datasets, config)
        if not isinstance(out, tuple) or len(out) != 2:
            raise RecipeError(f"recipe {self.name}: build_datasets must return (train, val) "
                              f"(val may be None), got {type(out).__name__}")
        if out[0] is None:
            raise RecipeError(f"recipe {self.name}: build_datasets returned no training set")
        return out[0], out[1]


def recipe_from_object(obj: Any, name: str | None = None, source: str = "") -> Recipe:
    """Validate a module or object that follows the contract."""
    label = name or getattr(obj, "__name__", None) or type(obj).__name__
    where = f" in {source}" if source else ""
    for part in REQUIRED:
        if not callable(getattr(obj, part, None)):
            raise RecipeError(f"recipe {label} lacks {part}(){where}: define it (see docs/training.md)")
    for part in ("collate_fn", "count_tokens"):
        value = getattr(obj, part, None)
        if value is not None and not callable(value):
            raise RecipeError(f"recipe {label}: {part} must be callable, got {type(value).__name__}")
    config = getattr(obj, "config", None) or {}
    if not isinstance(config, Mapping):
        raise RecipeError(f"recipe {label}: config must be a dict of TrainConfig keys, got {type(config).__name__}")
    return Recipe(name=label, build_model=obj.build_model, build_datasets=obj.build_datasets,
                  loss_fn=obj.loss_fn, collate_fn=getattr(obj, "collate_fn", None),
                  count_tokens=getattr(obj, "count_tokens", None), config=dict(config), source=source)


def load_recipe(path: str | Path) -> Recipe:
    """Import a recipe file (as a fresh module) and validate it."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"recipe file not found: {p}")
    module_name = f"throughput_recipe_{hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, p)
    if spec is None or spec.loader is None:
        raise RecipeError(f"cannot import recipe {p}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered so that DataLoader workers (spawn) and pickling can find the recipe's classes.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise RecipeError(f"recipe {p} failed to import: {type(e).__name__}: {e}".splitlines()[0]) from e
    return recipe_from_object(module, name=p.stem, source=str(p))


def model_fingerprint(model: Any) -> str:
    """The model's identity for plans and checkpoints: the first 16 hex digits of the sha256 of the
    lines ``"<name>:<shape as comma-separated ints>:<dtype>"`` for every parameter and buffer in
    ``state_dict()`` order, joined by newlines. Same architecture -> same fingerprint, whatever the
    weights; a plan or checkpoint for another model is refused."""
    lines = []
    for name, tensor in model.state_dict().items():
        shape = ",".join(str(int(d)) for d in tensor.shape)
        lines.append(f"{name}:{shape}:{str(tensor.dtype).removeprefix('torch.')}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _call_maybe_with(fn: Callable[..., Any], config: object) -> Any:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(config)
    return fn(config) if params else fn()
