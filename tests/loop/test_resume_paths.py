"""Time-based checkpoints (fake clock) and exact resume of an iterable (streaming) dataset."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
from torch.utils.data import IterableDataset

import throughput
from tests.loop.helpers import MICRO_GPT, assert_tensors_equal, final_state
from throughput.loop import load_recipe, recipe_from_object, resolve
from throughput.loop.checkpoint import list_checkpoints
from throughput.loop.loop import run_training
from throughput.timing.clock import FakeClock


def test_checkpoint_every_s_with_a_fake_clock(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    clock = FakeClock()
    base = load_recipe(MICRO_GPT)

    def loss_fn(model, batch):
        clock.advance(1.0)  # one micro-batch per step: step k ends at t = k seconds
        return base.loss_fn(model, batch)

    recipe = recipe_from_object(types.SimpleNamespace(build_model=base.build_model, build_datasets=base.build_datasets,
                                                      loss_fn=loss_fn, collate_fn=base.collate_fn, config={}), name="timed")
    _, cfg, _ = resolve(recipe, overrides={"steps": 10, "ckpt_every_s": 2.5, "keep_last": 10, "eval_every": 0},
                        out=tmp_path)
    run_training(recipe, cfg, progress=False, clock=clock)
    # t - last >= 2.5: at t=3 (3-0), t=6 (6-3), t=9 (9-6); and always at the last step, 10.
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [3, 6, 9, 10]


class Stream(IterableDataset):
    """A deterministic stream of the recipe's rows (e.g. a sharded web dataset in real life)."""

    def __init__(self, rows: list[torch.Tensor]) -> None:
        self.rows = rows

    def __iter__(self):
        return iter(self.rows)


def test_iterable_dataset_resumes_by_skipping_consumed_batches(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    base = load_recipe(MICRO_GPT)

    def datasets(cfg):
        train, val = base.make_datasets(cfg)
        return Stream([train[i] for i in range(len(train))]), val

    recipe = recipe_from_object(types.SimpleNamespace(build_model=base.build_model, build_datasets=datasets,
                                                      loss_fn=base.loss_fn, collate_fn=base.collate_fn, config={}),
                                name="stream")
    # 96 rows / 8 = 12 micro-batches per pass; 16 steps cross into the second pass (epoch 1).
    sets = {"steps": 16, "ckpt_every_steps": 7, "keep_last": 3, "eval_every": 0}
    throughput.train(recipe, out=tmp_path / "ref", overrides=sets, progress=False)
    throughput.train(recipe, out=tmp_path / "run", overrides=sets, progress=False)
    (tmp_path / "run" / "checkpoints" / "ckpt-00000016.pt").write_bytes(b"THROUGHPUT-CKPT 1\n")  # damaged
    resumed = throughput.train(recipe, out=tmp_path / "run", overrides=sets, resume=True, progress=False)
    assert resumed.resumed_from == 14
    assert final_state(tmp_path / "run")["data"] == {"epoch": 1, "index": 4}  # 16 - 12 batches into epoch 1
    assert_tensors_equal(final_state(tmp_path / "run")["model"], final_state(tmp_path / "ref")["model"], "model")
