"""Packing as a measured knob of a recipe: probed only when the recipe builds packed rows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from throughput.advisor.packing_trial import packing_trial, recipe_honors_packing
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
    assert packing_trial(deaf, {"micro_batch_size": 4}) is None


def test_trial_measures_both_layouts(small_demo) -> None:  # type: ignore[no-untyped-def]
    finding = packing_trial(small_demo, {"micro_batch_size": 4, "amp": "fp32"}, steps=2)
    assert finding is not None and finding.rule_id == "probe.packing" and finding.confidence == "high"
    assert set(finding.settings) == {"packing"}
    assert "packing=false:" in finding.evidence[0] and "packing=true:" in finding.evidence[0]
