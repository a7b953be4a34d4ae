"""Packing as a measured knob of a recipe: a candidate only when the recipe builds packed rows (the
measurement itself is confirm.py's, tested in test_confirm.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from throughput.advisor.packing_trial import recipe_honors_packing
from throughput.loop.recipe import recipe_from_object


@pytest.fixture()
def small_demo(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from throughput.demo import recipe
    monkeypatch.setattr(recipe, "DOCUMENTS", 120)
    monkeypatch.setattr(recipe, "VAL_DOCUMENTS", 10)
    recipe.corpus.cache_clear()
    yield recipe_from_object(recipe)
    recipe.corpus.cache_clear()


def test_demo_recipe_honors_packing(small_demo) -> None:  # type: ignore[no-untyped-def]
    assert recipe_honors_packing(small_demo, {})


def test_a_recipe_that_ignores_packing_is_not_probed(small_demo) -> None:  # type: ignore[no-untyped-def]
    deaf = recipe_from_object(SimpleNamespace(
        build_model=small_demo.build_model, loss_fn=small_demo.loss_fn, collate_fn=small_demo.collate_fn,
        build_datasets=lambda cfg: small_demo.build_datasets(SimpleNamespace(packing=False))))
    assert not recipe_honors_packing(deaf, {})
