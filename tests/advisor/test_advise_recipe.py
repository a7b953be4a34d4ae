"""``throughput advise --recipe``: in-process probes of a training-loop recipe, and a plan that
``throughput train --plan`` accepts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.zygote import Zygote

RECIPE = textwrap.dedent("""
    import torch
    from torch import nn

    config = {"micro_batch_size": 4, "grad_accum": 2, "steps": 2, "eval_every": 0, "eval_batches": 1}

    class Rows(torch.utils.data.Dataset):
        # variable-length rows: 2 of every 4 are 16 long, the others 2 long
        def __len__(self):
            return 256
        def __getitem__(self, i):
            n = 16 if i % 4 < 2 else 2
            return torch.arange(n) % 7

    def collate_fn(rows):
        t = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), t, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
        return {"input_ids": ids}

    def build_model(cfg):
        return nn.Sequential(nn.Embedding(7, 8), nn.Flatten(0, 1), nn.Linear(8, 7))

    def build_datasets(cfg):
        return Rows(), None

    def loss_fn(model, batch):
        ids = batch["input_ids"]
        return nn.functional.cross_entropy(model(ids), ids.flatten())
""")


@pytest.mark.slow
def test_advise_recipe_writes_a_plan_the_loop_accepts(tmp_path: Path, zygote: Zygote) -> None:
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE)
    plan = tmp_path / "plan.json"
    # advise and train forked from the warm zygote (advise's probes are fresh interpreters, as always)
    outputs = tmp_path.with_name(tmp_path.name + "-output")
    out = zygote.start(["advise", "--recipe", str(recipe), "--time-budget", "0.001", "--probe-steps", "1",
                        "--mtbf-hours", "24", "--plan-out", str(plan)], outputs / "advise", cwd=tmp_path).result()
    assert out.returncode == 0, out.stderr
    # global batch = the recipe's 4 x 2 = 8 samples
    assert "global batch 8 samples" in out.stdout
    # the time budget ends the search after the baseline probe at the recipe's own micro-batch (4)
    # padding: rows 16,16,2,2 per group of 4 -> micro-batch 4 computes 64 tokens for 36 real: 28/64 = 44% waste;
    # this recipe's build_datasets ignores config.packing, so it is a code change, not a --set
    assert "Pack sequences" in out.stdout and "padding is 44%" in out.stdout and "in code:  build packed rows" in out.stdout
    # the recipe has checkpointing off: the cadence says so, and the plan does not switch it on
    assert "Checkpointing is off in this recipe" in out.stdout and "a checkpoint takes" in out.stdout
    raw = json.loads(plan.read_text())
    assert raw["model_fingerprint"] and "ckpt_every_steps" not in raw
    assert any(n.startswith("not in the plan: ckpt_every_steps=") for n in raw["notes"])
    train = zygote.start(["train", str(recipe), "--plan", str(plan), "--set", "steps=1", "--set", "ckpt_every_steps=0",
                          "--quiet", "--out", str(tmp_path / "run")], outputs / "train", cwd=tmp_path).result()
    assert train.returncode == 0, train.stderr


def test_advise_recipe_missing_parts_is_one_line(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.py"
    recipe.write_text("def build_model(cfg):\n    return None\n")
    out = subprocess.run([sys.executable, "-m", "throughput", "advise", "--recipe", str(recipe)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "build_datasets" in out.stderr
