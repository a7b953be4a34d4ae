"""Each change measured alone (confirm.py), the candidates a search result gives (candidates.py), how a
recommendation is applied (apply.py), and the worker-split check on real DataLoader workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from throughput.advisor.apply import TargetRef, apply_argv, code_change, recommendation, with_options
from throughput.advisor.candidates import Start, candidates, plan_settings
from throughput.advisor.confirm import Candidate, confirm, paired_gain
from throughput.advisor.stream_check import check_in_process, judge_split
from throughput.advisor.trials import ProbeResult
from throughput.finding import Finding
from throughput.thresholds import NOISE_FLOOR


def test_paired_gain_hand_derived() -> None:
    # per-round ratios 12/10 = 1.2, 13/10 = 1.3, 11/10 = 1.1: median 1.2 -> +20%
    m = paired_gain([10.0, 10.0, 10.0], [12.0, 13.0, 11.0])
    assert m.ratios == pytest.approx((1.2, 1.3, 1.1)) and m.gain == pytest.approx(0.2)
    # noise: 2 x sample std of (1.2, 1.3, 1.1) = 2 x 0.1 = 0.2; the gain is not above it
    assert m.noise == pytest.approx(0.2) and not m.worth_it
    tight = paired_gain([10.0, 10.0], [13.0, 13.0])           # std 0 -> the floor
    assert tight.noise == NOISE_FLOOR and tight.worth_it
    assert paired_gain([10.0], [13.0]).noise is None             # one round: noise unknown
    assert paired_gain([None], [13.0]).gain is None              # a failed run measures nothing


class Scripted:
    """A run target that returns scripted samples/s per configuration and records the order of runs."""

    def __init__(self, rates: Mapping[tuple[tuple[str, Any], ...], float]) -> None:
        self.rates, self.calls = rates, []   # type: ignore[var-annotated]

    def run(self, config: Mapping[str, object], steps: int) -> ProbeResult:
        key = tuple(sorted(config.items()))
        self.calls.append(key)
        return ProbeResult(samples_per_s=self.rates[key], steps=steps)


def test_confirm_measures_each_change_alone_interleaved_and_drops_the_unproven() -> None:
    w = Candidate(rule_id="probe.num_workers", title="workers", settings={"num_workers": 2})
    a = Candidate(rule_id="probe.amp", title="amp", settings={"amp": "bf16"})
    target = Scripted({(): 100.0, (("num_workers", 2),): 150.0, (("amp", "bf16"),): 101.0,
                       (("amp", "bf16"), ("num_workers", 2)): 152.0})
    out = confirm(target, [w, a], rounds=3, steps=5, plan_settings={"num_workers": 2, "amp": "bf16"})
    # sides: baseline, workers, amp, plan; rotated each round so no side always goes first
    assert target.calls[0] == () and target.calls[4] == (("num_workers", 2),) and len(target.calls) == 12
    [f] = out.findings
    assert (f.rule_id, f.measured, f.confidence) == ("probe.num_workers", True, "high")
    assert f.expected_gain == pytest.approx(0.5) and f.gain_noise == NOISE_FLOOR      # 150/100 every round
    assert any(n.startswith("amp: ") and "not recommended" in n and "+1%" in n for n in out.notes)
    assert out.plan is not None and out.plan.gain == pytest.approx(0.52)


def test_candidates_group_knobs_and_say_what_changes_training() -> None:
    tuned = {"micro_batch_size": 32, "grad_accum": 2, "num_workers": 2, "prefetch_factor": 4, "amp": "bf16",
             "persistent_workers": True}
    script = Start(kind="script", config={"micro_batch_size": 16, "num_workers": 0, "amp": "fp32"}, accum=4)
    by_id = {c.rule_id: c for c in candidates(script, tuned, {})}
    assert by_id["probe.num_workers"].settings == {"num_workers": 2, "prefetch_factor": 4, "persistent_workers": True}
    assert by_id["probe.amp"].settings == {"amp": "bf16"} and by_id["probe.amp"].changes_training is None
    batch = by_id["probe.micro_batch_size"]
    # a script accumulates 4 micro-batches itself: batch 32 alone makes its global batch 16 x 4 = 64 -> 32 x 4 = 128;
    # keeping 32 x 2 = 64 needs the accumulation count changed in the code
    assert batch.settings == {"micro_batch_size": 32} and "64 -> 128" in (batch.changes_training or "")
    assert batch.code_change is not None and "accum = 2" in batch.code_change
    assert plan_settings(list(by_id.values())) == {"num_workers": 2, "prefetch_factor": 4, "persistent_workers": True,
                                                   "amp": "bf16"}
    recipe = Start(kind="recipe", config={"micro_batch_size": 16, "grad_accum": 4, "num_workers": 0, "amp": "fp32"})
    rb = {c.rule_id: c for c in candidates(recipe, tuned, {})}["probe.micro_batch_size"]
    assert rb.settings == {"micro_batch_size": 32, "grad_accum": 2} and rb.changes_training is None


def test_apply_argv_and_code_change_per_target() -> None:
    script = TargetRef(kind="script", path="train.py", args=("--epochs", "1"))
    recipe = TargetRef(kind="recipe", path="recipes/cnn.py")
    assert apply_argv({"num_workers": 2, "amp": "bf16"}, script) == [
        "throughput", "profile", "--set", "amp=bf16", "--set", "num_workers=2", "train.py", "--epochs", "1"]
    assert apply_argv({"micro_batch_size": 32, "grad_accum": 2}, recipe, "probe.micro_batch_size") == [
        "throughput", "train", "recipes/cnn.py", "--set", "grad_accum=2", "--set", "micro_batch_size=32",
        "--out", "runs/cnn-probe-micro_batch_size"]
    assert apply_argv({"grad_accum": 2}, script) is None       # a script cannot take it from outside
    ga = Finding(rule_id="x", title="x", settings={"grad_accum": 2})
    assert "accum = 2" in (code_change(ga, script) or "") and code_change(ga, recipe) is None
    # our options go before the script (its own arguments come last), after everything for train
    assert with_options(["throughput", "profile", "train.py", "--lr", "1"], ["--max-steps", "5"]) == [
        "throughput", "profile", "--max-steps", "5", "train.py", "--lr", "1"]
    rec = recommendation(Finding(rule_id="probe.amp", title="bf16", settings={"amp": "bf16"}, expected_gain=0.3,
                                 gain_noise=0.05, measured=True, confidence="high"), script)
    assert set(rec) >= {"id", "title", "expected_gain", "confidence", "measured", "apply", "code_change"}
    assert rec["apply"][:2] == ["throughput", "profile"] and rec["code_change"] is None


class Stream(IterableDataset):  # type: ignore[type-arg]
    """Samples 0..n-1 as rows; ``split``: each worker yields only its share (get_worker_info)."""

    def __init__(self, n: int, split: bool) -> None:
        self.n, self.split = n, split

    def __iter__(self):  # type: ignore[no-untyped-def]
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None and self.split else (0, 1)
        for i in range(self.n):
            if i % workers == worker:
                yield torch.tensor([float(i), float(i * i)])


@pytest.mark.parametrize("split, verdict", [(False, "duplicated"), (True, "split")])
def test_worker_split_check_on_real_workers(split: bool, verdict: str) -> None:
    ds = Stream(64, split)
    check = check_in_process(lambda workers: DataLoader(ds, batch_size=4, num_workers=workers))
    assert check.verdict == verdict, check.evidence
    if not split:
        # 4 batches of 4 with 2 workers: each worker's first 2 batches are samples 0-7, so 16 samples, 8 distinct
        assert "16 samples (8 distinct) with 2 workers" in check.evidence[0]


def test_split_judgement_hand_made() -> None:
    zero = {"digest_batches": 4, "digest_samples": 8, "digest_distinct": 8, "digest_set": "a"}
    assert judge_split(zero, {**zero, "digest_distinct": 4, "digest_set": "b"}).verdict == "duplicated"
    assert judge_split(zero, dict(zero)).verdict == "split"
    assert judge_split(zero, {**zero, "digest_set": "c"}).verdict == "unconfirmed"
    assert judge_split(None, zero).verdict == "unconfirmed"


def test_train_runs_are_read_from_metrics_over_training_time() -> None:
    from throughput.advisor.train_target import TrainTarget, measure_records
    records = [{"samples": 32, "tokens": None, "train_s": 1.0, "loss": 2.0, "phase_s": {"data": 0.5}}] * 2 + \
              [{"samples": 32, "tokens": None, "train_s": 0.25, "loss": 1.0, "phase_s": {"data": 0.05}}] * 4
    r = measure_records(records, warmup=2)
    # 4 steady steps of 32 samples in 4 x 0.25 s: 128 / 1.0 = 128 samples/s; data 0.2 of 1.0 s; no tokens
    assert r.samples_per_s == 128.0 and r.tokens_per_s is None and r.steps == 4
    assert r.data_wait_share == pytest.approx(0.2) and r.losses == (1.0,) * 4
    cmd = TrainTarget("cnn.py").command({"num_workers": 2, "grad_accum": 2, "seed": None}, 10, out_dir=Path("o"))
    # 2 workers prefetch 2 x 2 batches: warm-up 5 steps, then the 10 measured
    assert cmd[2:] == ["throughput", "train", "cnn.py", "--quiet", "--out", "o", "--max-steps", "15",
                       "--set", "grad_accum=2", "--set", "num_workers=2"]
