"""Packing as a measured knob for training-loop recipes: whether a recipe builds packed rows on request.

The measurement itself is the confirmation's (``confirm.py``, ``--set packing=true`` against the
unchanged recipe in ``throughput train`` runs), in loss-bearing tokens/s: samples/s cannot compare padded
and packed layouts (a packed row holds several documents). A recipe that ignores ``packing`` builds the
same dataset either way and is not probed.
"""

from __future__ import annotations

from typing import Any, Mapping

from throughput.loop.recipe import Recipe


def recipe_honors_packing(recipe: Recipe, config: Mapping[str, Any]) -> bool:
    """True when build_datasets gives a different training set with packing on (checked by type and
    length, without iterating it)."""
    from throughput.loop.config import TrainConfig
    base = TrainConfig().with_overrides({**recipe.config, **config})
    off = recipe.make_datasets(base.with_overrides({"packing": False}))[0]
    on = recipe.make_datasets(base.with_overrides({"packing": True}))[0]
    return type(on) is not type(off) or _len(on) != _len(off)


def _len(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except TypeError:
        return None
