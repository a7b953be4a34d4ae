"""metrics.jsonl contents, the progress display, and the torch-free diagnosis module."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import pytest
import torch

import throughput
from tests.loop.helpers import MICRO_GPT, REPO
from throughput.loop import TrainConfig, load_recipe
from throughput.loop.metrics import Progress, read_metrics, truncate_metrics


def test_metrics_lines_hold_loss_lr_norm_tokens_and_phases(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    sets = {"steps": 4, "micro_batch_size": 4, "grad_accum": 2, "eval_every": 2, "warmup_steps": 2,
            "schedule": "constant", "shuffle": False}
    result = throughput.train(MICRO_GPT, out=tmp_path, overrides=sets, progress=False)
    train = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    # the lr each update used: warm-up (step+1)/2 of 3e-3, then constant
    assert [r["lr"] for r in train] == pytest.approx([1.5e-3, 3e-3, 3e-3, 3e-3])
    # shuffle off: step 1 reads rows 0..7 in two micro-batches; loss-bearing tokens = sum(len(row) - 1)
    rows = load_recipe(MICRO_GPT).make_datasets(None)[0]
    assert train[0]["tokens"] == sum(len(rows[i]) - 1 for i in range(8))
    assert train[1]["tokens"] == sum(len(rows[i]) - 1 for i in range(8, 16))
    for r in train:
        assert {"forward", "backward", "optimizer", "data"} <= set(r["phase_s"])
        train_s = r["step_s"] - r["phase_s"].get("eval", 0.0) - r["phase_s"].get("checkpoint", 0.0)
        assert r["tokens_per_s"] == pytest.approx(r["tokens"] / train_s)
        assert r["grad_norm"] > 0 and r["clip_count"] == sum(t["clipped"] for t in train if t["step"] <= r["step"])
    assert ["val_loss" in r for r in train] == [False, True, False, True]
    assert result.final_val_loss == train[-1]["val_loss"]
    assert result.final_train_loss == pytest.approx(sum(r["loss"] for r in train) / 4)  # fewer than 10 steps


def test_truncate_keeps_records_up_to_step_and_drops_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"kind": "train", "step": s}) + "\n" for s in range(1, 6)) + '{"kind": "tr')
    truncate_metrics(path, 3)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_plain_lines_every_n_and_bar_on_tty() -> None:
    plain = io.StringIO()
    p = Progress(total=5, every=2, stream=plain)
    for step in range(1, 6):
        p.update(step, 1.0, 1e-3, 100.0)
    assert [line.split()[1] for line in plain.getvalue().splitlines()] == ["2/5", "4/5", "5/5"]
    tty = _Tty()
    bar = Progress(total=4, every=100, stream=tty)
    bar.update(2, 1.5, 1e-3, None)
    assert tty.getvalue().startswith("\r[############............] step 2/4 loss 1.5000")  # 24 * 2/4 = 12 '#'


def test_loss_analysis_is_torch_free() -> None:
    tree = ast.parse((REPO / "throughput" / "analysis" / "loss.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" not in names and "numpy" not in names


def test_packed_rows_from_throughput_packing_just_work(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    sets = {"steps": 3, "micro_batch_size": 4, "eval_every": 3, "shuffle": False, "packing": True}
    result = throughput.train(MICRO_GPT, out=tmp_path / "packed", overrides=sets, progress=False)
    assert result.end == "completed" and result.final_val_loss is not None
    packed_rows = load_recipe(MICRO_GPT).make_datasets(TrainConfig(packing=True))[0]
    train = [r for r in read_metrics(tmp_path / "packed" / "metrics.jsonl") if r["kind"] == "train"]
    # Each packed document of length L has L - 1 loss-bearing tokens (its first token predicts nothing).
    for step, record in enumerate(train):
        rows = [packed_rows[i] for i in range(4 * step, 4 * step + 4)]
        assert record["tokens"] == sum(int(n) - 1 for row in rows for n in row["seq_lens"])
