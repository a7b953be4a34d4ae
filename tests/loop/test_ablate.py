"""Ablations: one variable at a time, baseline repeats give the noise, small differences are marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.loop.helpers import MICRO_GPT
from throughput.cli.main import main
from throughput.loop.ablate import Outcome, Variant, compare, parse_vary, plan_variants, render_markdown
from throughput.loop.config import ConfigError, TrainConfig


def _outcome(name: str, seed: int, train: float, val: float, rate: float) -> Outcome:
    return Outcome(variant=Variant(name=name, seed=seed), end="completed",
                   metrics={"final_train_loss": train, "final_val_loss": val, "tokens_per_s": rate})


def test_compare_hand_derived() -> None:
    outcomes = [_outcome("baseline", 0, 2.0, 2.2, 1000.0), _outcome("baseline", 1, 2.2, 2.4, 1100.0),
                _outcome("baseline", 2, 2.1, 2.3, 900.0),
                _outcome("lr=1e-2", 0, 1.5, 2.25, 1050.0)]
    c = compare(outcomes)
    # baseline train losses 2.0, 2.2, 2.1: mean 2.1, sample std sqrt((0.01+0.01+0)/2) = 0.1
    assert c.noise_std["final_train_loss"] == pytest.approx(0.1)
    # rates 1000, 1100, 900: sample std sqrt((0+10000+10000)/2) = 100
    assert c.noise_std["tokens_per_s"] == pytest.approx(100.0)
    row = c.rows[1]
    assert row.delta["final_train_loss"] == pytest.approx(-0.5)       # 1.5 - 2.0 (the same-seed baseline)
    assert row.within_noise["final_train_loss"] is False              # |0.5| >= 2 x 0.1
    assert row.within_noise["final_val_loss"] is True                 # |0.05| < 2 x 0.1
    assert row.within_noise["tokens_per_s"] is True                   # |50| < 2 x 100
    table = render_markdown(c)
    assert "| lr=1e-2 | 1.5 (-0.5) | 2.25 (+0.05~) | 1050 (+50~) |" in table


def test_one_baseline_run_means_noise_unknown() -> None:
    c = compare([_outcome("baseline", 0, 2.0, 2.2, 1000.0), _outcome("amp=bf16", 0, 1.9, 2.1, 900.0)])
    assert c.noise_std["final_train_loss"] is None and c.rows[1].within_noise["final_train_loss"] is None


def test_plan_variants_one_at_a_time_and_validated() -> None:
    base = TrainConfig(schedule="cosine", seed=5)
    variants = plan_variants(base, parse_vary(["schedule=cosine,constant", "weight_decay=0,0.1"]), repeats=2)
    # cosine and weight_decay=0.1 equal the baseline: skipped; repeats use seeds 5, 6; variants seed 5.
    assert [(v.name, v.seed) for v in variants] == [("baseline", 5), ("baseline", 6), ("schedule=constant", 5),
                                                     ("weight_decay=0", 5)]
    with pytest.raises(ConfigError, match="schedule must be one of"):
        plan_variants(base, {"schedule": ["linear"]}, repeats=1)
    with pytest.raises(ConfigError, match="--vary expects"):
        parse_vary(["schedule"])


def test_ablate_cli_runs_and_writes_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    code = main(["ablate", str(MICRO_GPT), "--vary", "schedule=cosine,constant", "--repeats", "2",
                 "--set", "steps=4", "--set", "eval_every=0", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "ablation.json").read_text())
    assert [r["name"] for r in data["rows"]] == ["baseline", "schedule=constant"]
    assert data["baseline_runs"] == 2 and data["noise_std"]["final_train_loss"] is not None
    assert (tmp_path / "ablation.md").read_text() == capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["00-baseline", "01-baseline",
                                                                        "02-schedule_constant"]
