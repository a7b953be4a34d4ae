"""Accumulation invariance through the loop: (batch B, accumulation 1) == (B/k, k) to fp32 tolerance,
because each micro-batch's loss sum is divided by the loss-bearing tokens of the whole window."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

import throughput
from tests.loop.helpers import MICRO_GPT, final_state
from throughput.loop import load_recipe, recipe_from_object

STEPS = 5


def _params(out: Path) -> dict[str, torch.Tensor]:
    return final_state(out)["model"]


def _train(recipe: object, out: Path, batch: int, accum: int) -> dict[str, torch.Tensor]:
    # lr 1e-2 and no clipping so that any mis-weighting shows in the parameters after 5 updates.
    # eps 1e-6: the attention key bias has an exactly-zero true gradient (softmax ignores a constant
    # per query), so its gradient is fp32 rounding noise, which Adam with eps 1e-8 would turn into
    # full-size (lr) updates of random sign; a larger eps keeps that noise at noise size.
    sets = {"steps": STEPS, "micro_batch_size": batch, "grad_accum": accum, "lr": 1e-2, "warmup_steps": 0,
            "clip_grad_norm": 0.0, "eval_every": 0, "shuffle": True, "eps": 1e-6}
    throughput.train(recipe, out=out, overrides=sets, progress=False)
    return _params(out)


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)


@pytest.fixture
def recipe(monkeypatch: pytest.MonkeyPatch) -> object:
    torch.set_num_threads(1)
    monkeypatch.setenv("MICRO_GPT_DROPOUT", "0")  # no dropout: the RNG draws differ with the split
    return load_recipe(MICRO_GPT)


def test_batch_8_equals_4x2_and_2x4(recipe: object, tmp_path: Path) -> None:
    whole = _train(recipe, tmp_path / "b8", 8, 1)
    assert _close(whole, _train(recipe, tmp_path / "b4k2", 4, 2))
    assert _close(whole, _train(recipe, tmp_path / "b2k4", 2, 4))
    initial = load_recipe(MICRO_GPT)  # and the runs did move the parameters
    torch.manual_seed(0)
    assert not _close(whole, initial.make_model(None).state_dict())


def test_mean_of_means_is_not_invariant(recipe, tmp_path: Path) -> None:
    """The same recipe, but the batch hides its labels and loss_fn returns a per-micro-batch mean: the
    loop can only weight micro-batches equally (1/k), which over-weights short rows. Shows that the
    invariance above is a real property, not a tolerance too loose to fail."""
    tiny = recipe.build_model.__globals__  # the tiny_gpt module the test recipe wraps

    def collate(rows: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = tiny["collate_fn"](rows)
        return {"input_ids": batch["input_ids"], "targets": batch["labels"]}

    def mean_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = model(batch["input_ids"])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=-100)

    naive = recipe_from_object(types.SimpleNamespace(build_model=recipe.build_model, build_datasets=recipe.build_datasets,
                                                     loss_fn=mean_loss, collate_fn=collate, config={}), name="naive")
    assert not _close(_train(naive, tmp_path / "n8", 8, 1), _train(naive, tmp_path / "n2k4", 2, 4))
