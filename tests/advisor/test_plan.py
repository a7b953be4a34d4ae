"""The tuned plan: merging findings, what is left out (and said), the one file format and its loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from throughput.advisor.apply import TargetRef
from throughput.advisor.plan import build_plan, load_plan, save_plan
from throughput.finding import Finding, rank
from throughput.loop.plan import PlanError


def _f(rule: str, gain: float | None, confidence: str, changes: str | None = None, **settings: object) -> Finding:
    return Finding(rule_id=rule, title=rule, evidence=(f"{rule} measured",), expected_gain=gain,
                   confidence=confidence, action="--set x", settings=settings,  # type: ignore[arg-type]
                   changes_training=changes)


def test_rank_weights_gain_by_confidence() -> None:
    # scores: a 0.5 * 0.3 = 0.15; b 0.2 * 1.0 = 0.2; c unknown gain -> 0
    a, b, c = _f("a", 0.5, "low"), _f("b", 0.2, "high"), _f("c", None, "high")
    assert [f.rule_id for f in rank([a, b, c])] == ["b", "a", "c"]


def test_higher_ranked_finding_wins_a_conflicting_key() -> None:
    plan = build_plan([_f("guess", 0.4, "low", num_workers=2), _f("probe", 0.3, "high", num_workers=3)])
    # probe scores 0.3 > guess 0.4 * 0.3 = 0.12, so num_workers=3
    assert plan.settings == {"num_workers": 3}
    assert "num_workers: probe measured" in plan.notes


def test_the_measured_configuration_wins_over_intermediate_steps() -> None:
    steps = [_f("step1", 0.4, "high", micro_batch_size=16), _f("step2", 0.1, "high", micro_batch_size=32)]
    plan = build_plan(steps + [_f("rule", 0.2, "medium", pin_memory=True)], measured={"micro_batch_size": 32})
    assert plan.settings == {"micro_batch_size": 32, "pin_memory": True}


def test_changes_to_training_code_changes_and_switched_off_knobs_stay_out_and_are_noted() -> None:
    script = TargetRef(kind="script", path="train.py")
    findings = [_f("batch", 0.5, "high", changes="the global batch: 8 -> 32", micro_batch_size=32),
                _f("workers", 0.3, "high", num_workers=2),
                _f("accum", 0.2, "high", grad_accum=2),                 # a script cannot take it from outside
                _f("ckpt", None, "medium", ckpt_every_steps=100)]
    plan = build_plan(findings, target=script, keep_off=("ckpt_every_steps",))
    assert plan.settings == {"num_workers": 2}
    assert any(n.startswith("not in the plan: micro_batch_size=32 (changes training: the global batch") for n in plan.notes)
    assert "not in the plan: grad_accum=2 (needs a code change)" in plan.notes
    assert any(n.startswith("not in the plan: ckpt_every_steps=100 (the recipe has it off") for n in plan.notes)


def test_file_round_trip_is_flat_knobs_with_notes(tmp_path: Path) -> None:
    plan = build_plan([_f("p", 0.3, "high", micro_batch_size=16, grad_accum=4, prefetch_factor=4)])
    path = save_plan(plan, tmp_path / "plan.json")
    raw = json.loads(path.read_text())
    assert raw["plan_version"] == 1 and raw["source"] == "throughput advise"
    assert (raw["micro_batch_size"], raw["grad_accum"], raw["prefetch_factor"]) == (16, 4, 4)
    assert load_plan(path).settings == {"grad_accum": 4, "micro_batch_size": 16, "prefetch_factor": 4}
    assert list(tmp_path.iterdir()) == [path]            # atomic write left no temp file


@pytest.mark.parametrize("text,match", [
    ("{", "truncated"), ("[1, 2]", "JSON object"), ('{"plan_version": 7}', "plan_version 7"),
    ('{"amp": [1]}', "amp must be str, got list"), ('{"amp": "fp8"}', "amp must be one of auto | bf16"),
    ('{"workers": 2}', "unknown key 'workers'"), ('{"num_workers": -1}', "num_workers must be >= 0, got -1"),
    ('{"notes": 3}', "notes must be a string or a list")])
def test_bad_plan_files_give_one_line(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "plan.json"
    p.write_text(text)
    with pytest.raises(PlanError, match=match) as e:
        load_plan(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_finding_validates_confidence_and_gain() -> None:
    with pytest.raises(ValueError, match="confidence"):
        _f("x", 0.1, "certain")
    with pytest.raises(ValueError, match="NaN"):
        _f("x", float("nan"), "low")
