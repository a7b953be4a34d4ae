"""The tuned training loop: ``throughput.train(recipe, plan=..., overrides=...)``; see docs/training.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from throughput.loop.config import ConfigError, TrainConfig, parse_set_args
from throughput.loop.plan import Plan, PlanError, load_plan, plan_from_dict
from throughput.loop.recipe import Recipe, RecipeError, load_recipe, model_fingerprint, recipe_from_object


def resolve(recipe: Any, plan: Any = None, overrides: Mapping[str, Any] | None = None,
            out: str | Path | None = None) -> tuple[Recipe, TrainConfig, Plan | None]:
    """(recipe, config, plan) from the layered sources: defaults < recipe.config < plan < overrides < out.
    The plan is read and checked before the recipe is imported, so a bad plan file fails at once."""
    the_plan: Plan | None
    if plan is None or isinstance(plan, Plan):
        the_plan = plan
    elif isinstance(plan, Mapping):
        the_plan = plan_from_dict(dict(plan))
    else:
        the_plan = load_plan(plan)
    if isinstance(recipe, (str, Path)):
        rec = load_recipe(recipe)
    elif isinstance(recipe, Recipe):
        rec = recipe
    else:
        rec = recipe_from_object(recipe)
    try:
        cfg = TrainConfig().with_overrides(rec.config)
    except ConfigError as e:
        raise RecipeError(f"recipe {rec.name}: config: {e}") from None
    if the_plan is not None:
        cfg = the_plan.apply(cfg)
    cfg = cfg.with_overrides(dict(overrides or {}))
    if out is not None:
        cfg = cfg.with_overrides({"out_dir": str(out)})
    return rec, cfg, the_plan


def train(recipe: Any, *, plan: Any = None, overrides: Mapping[str, Any] | None = None,
          out: str | Path | None = None, resume: bool = False, progress: bool = True) -> Any:
    """Run the training loop and return a ``TrainResult``.

    Args:
        recipe: a recipe file path, a ``Recipe``, or any object/module with build_model,
            build_datasets and loss_fn (see docs/training.md).
        plan: a plan file path, a dict in the plan format, or a ``Plan``.
        overrides: config keys -> values (typed, or strings as from ``--set``).
        out: the run folder (overrides ``out_dir``).
        resume: continue from the newest valid checkpoint in ``out`` (a fresh start if it has none).
    """
    from throughput.loop.loop import run_training

    rec, cfg, the_plan = resolve(recipe, plan, overrides, out)
    return run_training(rec, cfg, resume=resume, progress=progress, plan=the_plan)


__all__ = ["ConfigError", "Plan", "PlanError", "Recipe", "RecipeError", "TrainConfig", "load_plan",
           "load_recipe", "model_fingerprint", "parse_set_args", "resolve", "train"]
