"""Bad input gets one clear line and changes nothing on disk."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import throughput
from tests.loop.helpers import MICRO_GPT, REPO, train_env
from throughput.cli.main import main
from throughput.loop import load_recipe, model_fingerprint


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_recipe_missing_loss_fn_names_it_as_a_subprocess(tmp_path: Path) -> None:
    recipe = tmp_path / "broken.py"
    recipe.write_text("def build_model(cfg):\n    pass\n\ndef build_datasets(cfg):\n    return [], None\n")
    proc = subprocess.run([sys.executable, "-m", "throughput", "train", str(recipe), "--out", str(tmp_path / "o")],
                          env=train_env(), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"throughput: error: recipe broken lacks loss_fn() in {recipe}: define it (see docs/training.md)"
    assert not (tmp_path / "o").exists()


def test_recipe_with_unknown_config_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.py"
    recipe.write_text("from tests.loop.micro_gpt import build_model, build_datasets, loss_fn, collate_fn\n"
                      "config = {'stpes': 30}\n")
    assert main(["train", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "unknown config key 'stpes'" in _error_line(capsys)


@pytest.mark.parametrize("item, message", [
    ("lr=fast", "lr must be float, got 'fast'"),
    ("lr=inf", "lr must be a finite number, got inf"),
    ("lr=nan", "lr must be a finite number, got nan"),
    ("seed=99999999999999999999", "seed must fit in 64 bits, got 99999999999999999999"),
    ("steps=1.5", "steps must be int, got '1.5'"),
    ("pin_memory=maybe", "pin_memory must be bool, got 'maybe' (use true or false)"),
    ("amp=fp8", "amp must be one of auto | bf16 | fp16 | fp32, got 'fp8'"),
    ("nosuchkey=1", "unknown config key 'nosuchkey'"),
    ("steps", "train: argument --set: expected key=value, got 'steps' (see `throughput train --help`)"),
])
def test_bad_set_values(item: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(MICRO_GPT), "--set", item, "--out", str(tmp_path / "o")]) == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_plan_for_another_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"model_fingerprint": "0123456789abcdef", "lr": 1e-3}))
    torch.manual_seed(0)
    ours = model_fingerprint(load_recipe(MICRO_GPT).make_model(None))
    assert main(["train", str(MICRO_GPT), "--plan", str(plan), "--out", str(tmp_path / "o")]) == 2
    assert _error_line(capsys) == (f"throughput: error: plan {plan} was tuned for model 0123456789abcdef, but this "
                                   f"recipe's model is {ours}: re-run the advisor for this model or drop --plan")
    assert not (tmp_path / "o").exists()


def test_plan_with_matching_fingerprint_is_applied(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    ours = model_fingerprint(load_recipe(MICRO_GPT).make_model(None))
    plan = {"model_fingerprint": ours, "steps": 3, "schedule": "constant", "warmup_steps": 0, "notes": "test"}
    result = throughput.train(MICRO_GPT, plan=plan, out=tmp_path / "o", progress=False)
    assert result.step == 3
    lrs = {json.loads(line)["lr"] for line in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()}
    assert lrs == {3e-3}  # constant schedule, no warm-up: the recipe's lr every step


def test_checkpoint_folder_of_another_run_is_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "run"
    throughput.train(MICRO_GPT, out=out, overrides={"steps": 2, "ckpt_every_steps": 1}, progress=False)
    before = _snapshot(out)
    monkeypatch.setenv("MICRO_GPT_D", "8")  # another architecture, another fingerprint
    assert main(["train", str(MICRO_GPT), "--out", str(out), "--resume", "--set", "steps=4"]) == 2
    line = _error_line(capsys)
    assert f"{out} belongs to another run" in line and "nothing was overwritten" in line
    assert main(["train", str(MICRO_GPT), "--out", str(out), "--set", "steps=4"]) == 2
    line = _error_line(capsys)
    assert "already holds a training run (" in line and "; pass --resume to continue it" in line
    assert _snapshot(out) == before


def test_loss_fn_returning_a_vector_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "vec.py"
    recipe.write_text("from tests.loop.micro_gpt import build_model, build_datasets, collate_fn, tiny_gpt\n"
                      "import torch.nn.functional as F\n"
                      "def loss_fn(model, batch):\n"
                      "    logits = model(batch['input_ids'])\n"
                      "    return F.cross_entropy(logits.flatten(0, 1), batch['labels'].flatten(), reduction='none')\n")
    assert main(["train", str(recipe), "--out", str(tmp_path / "o"), "--set", "steps=2"]) == 2
    line = _error_line(capsys)
    assert line.startswith("throughput: error: loss_fn must return (loss_sum, n_loss_tokens) or a scalar loss")
    assert "got Tensor of shape" in line
