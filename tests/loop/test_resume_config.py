"""Resuming with another configuration: refused where it breaks the exact continuation (batch shape, seed,
data order), applied from the resume step with --allow-config-change where it only changes the rest of
the run, and run.json says what is in use. Also --max-steps and samples/s for every recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.loop.helpers import MICRO_GPT
from throughput.cli.main import main
from throughput.loop import load_recipe, resolve
from throughput.loop.loop import run_training
from throughput.loop.metrics import read_metrics
from throughput.loop.resume import ResumeConfigError, resume_plan
from throughput.loop.schedules import Schedule

BASE = {"steps": 6, "eval_every": 0, "ckpt_every_steps": 0, "warmup_steps": 2, "lr": 1e-3}


def _train(out: Path, resume: bool = False, allow: bool = False, max_steps: int | None = None, **changes: object):  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    recipe = load_recipe(MICRO_GPT)
    _, cfg, _ = resolve(recipe, overrides={**BASE, **changes}, out=out)
    return run_training(recipe, cfg, resume=resume, progress=False, max_steps=max_steps, allow_config_change=allow)


def test_classes_of_changes_follow_the_knobs() -> None:
    saved = {"micro_batch_size": 8, "seed": 0, "lr": 1e-3, "eval_every": 10, "num_workers": 0}
    now = {"micro_batch_size": 16, "seed": 1, "lr": 3e-4, "eval_every": 5, "num_workers": 2, "out_dir": "x"}
    plan = resume_plan(saved, now, iterable_data=False)
    assert set(plan.refused) == {"micro_batch_size", "seed"}
    assert set(plan.allowed) == {"lr"} and set(plan.free) == {"eval_every", "num_workers"}
    # an iterable dataset's workers each read the stream: their count is part of the data order
    assert "num_workers" in resume_plan(saved, now, iterable_data=True).refused


def test_max_steps_stops_with_a_checkpoint_and_reports_samples_per_s(tmp_path: Path) -> None:
    r = _train(tmp_path, max_steps=3)
    assert (r.end, r.step) == ("stopped", 3)
    assert (tmp_path / "checkpoints" / "ckpt-00000003.pt").exists()
    train = [rec for rec in read_metrics(tmp_path / "metrics.jsonl") if rec["kind"] == "train"]
    # micro_gpt: micro-batches of 8 rows, one per step -> 8 samples a step, over the step's training time
    assert all(rec["samples"] == 8 and rec["samples_per_s"] == pytest.approx(8 / rec["train_s"]) for rec in train)
    assert r.samples_per_s is not None and r.samples_per_s > 0


@pytest.mark.parametrize("changes, keys", [({"micro_batch_size": 4}, "micro_batch_size 8 -> 4"),
                                           ({"seed": 7, "grad_accum": 2}, "grad_accum 1 -> 2, seed 0 -> 7")])
def test_resume_refuses_changes_that_break_exactness(tmp_path: Path, changes: dict, keys: str) -> None:
    _train(tmp_path, max_steps=3)
    before = (tmp_path / "run.json").read_text()
    with pytest.raises(ResumeConfigError) as e:
        _train(tmp_path, resume=True, allow=True, **changes)
    msg = str(e.value)
    assert keys in msg and "another --out" in msg and "\n" not in msg
    assert (tmp_path / "run.json").read_text() == before      # nothing changed on disk


def test_resume_with_a_new_lr_needs_the_flag_then_applies_it_from_this_step(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    _train(tmp_path, max_steps=3)
    rc = main(["train", str(MICRO_GPT), "--out", str(tmp_path), "--resume", "--quiet",
               *[x for k, v in {**BASE, "lr": 3e-4}.items() for x in ("--set", f"{k}={v}")]])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "lr 0.001 -> 0.0003" in err and "--allow-config-change" in err
    r = _train(tmp_path, resume=True, allow=True, lr=3e-4)
    assert (r.end, r.step, r.resumed_from) == ("completed", 6, 3)
    lrs = {rec["step"]: rec["lr"] for rec in read_metrics(tmp_path / "metrics.jsonl") if rec["kind"] == "train"}
    s = Schedule(kind="cosine", total_steps=6, warmup_steps=2, min_ratio=0.1)
    # update k (1-based) used the schedule's factor for index k-1: the old peak before the resume, the new after
    assert lrs[3] == pytest.approx(1e-3 * s(2)) and lrs[4] == pytest.approx(3e-4 * s(3))
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["lr"] == 3e-4                                     # the value in use
    assert run["config_changes"] == [{"step": 3, "changed": {"lr": [1e-3, 3e-4]}}]


def test_persistent_workers_keep_the_data_order_across_epochs(tmp_path: Path) -> None:
    """One DataLoader whose workers live across epochs reads the same batches in the same order as a new
    DataLoader per epoch (the epoch's permutation is made in the main process either way)."""
    losses = []
    for persistent in (False, True):
        out = tmp_path / str(persistent)
        # micro_gpt: 96 rows / 8 = 12 micro-batches an epoch, so 15 steps cross into the second epoch
        _train(out, steps=15, num_workers=1, persistent_workers=persistent, prefetch_factor=3)
        losses.append([rec["loss"] for rec in read_metrics(out / "metrics.jsonl") if rec["kind"] == "train"])
    assert len(losses[0]) == 15 and losses[0] == losses[1]
