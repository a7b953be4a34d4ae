"""The tuned plan: merging findings, the loop's flat file format, and bad plan files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from throughput.advisor.findings import Finding, rank
from throughput.advisor.plan import PlanFormatError, build_plan, load_plan, plan_to_dict, save_plan


def _f(rule: str, gain: float | None, confidence: str, **settings: object) -> Finding:
    return Finding(rule_id=rule, title=rule, evidence=(f"{rule} measured",), expected_gain=gain,
                   confidence=confidence, change="--set x", settings=settings)  # type: ignore[arg-type]


def test_rank_weights_gain_by_confidence() -> None:
    # scores: a 0.5 * 0.3 = 0.15; b 0.2 * 1.0 = 0.2; c unknown gain -> 0
    a, b, c = _f("a", 0.5, "low"), _f("b", 0.2, "high"), _f("c", None, "high")
    assert [f.rule_id for f in rank([a, b, c])] == ["b", "a", "c"]


def test_higher_ranked_finding_wins_a_conflicting_key() -> None:
    plan = build_plan([_f("guess", 0.4, "low", num_workers=2), _f("probe", 0.3, "high", num_workers=3)])
    # probe scores 0.3 > guess 0.4 * 0.3 = 0.12, so num_workers=3
    assert plan.config == {"num_workers": 3}
    assert plan.evidence["num_workers"] == ("probe measured",)


def test_the_measured_configuration_wins_over_intermediate_steps() -> None:
    # the search's steps 8 -> 16 (+40%) and 16 -> 32 (+10%): the larger step ranks first, but the
    # configuration the search ended on (and validated) is 32
    steps = [_f("step1", 0.4, "high", micro_batch_size=16), _f("step2", 0.1, "high", micro_batch_size=32)]
    plan = build_plan(steps + [_f("rule", 0.2, "medium", pin_memory=True)], measured={"micro_batch_size": 32})
    assert plan.config == {"micro_batch_size": 32, "pin_memory": True}


def test_file_is_flat_loop_keys_with_notes(tmp_path: Path) -> None:
    plan = build_plan([_f("p", 0.3, "high", micro_batch_size=16, grad_accum=4, prefetch_factor=4)])
    d = plan_to_dict(plan, keys=frozenset({"micro_batch_size", "grad_accum"}))
    assert d["plan_version"] == 1 and d["micro_batch_size"] == 16 and d["grad_accum"] == 4
    assert "prefetch_factor" not in d
    assert "not a TrainConfig key (apply it yourself): prefetch_factor=4" in d["notes"]
    path = save_plan(plan, tmp_path / "plan.json")
    loaded = load_plan(path)
    assert {k: loaded.config[k] for k in ("micro_batch_size", "grad_accum")} == {"micro_batch_size": 16,
                                                                                  "grad_accum": 4}
    assert list(tmp_path.iterdir()) == [path]            # atomic write left no temp file


@pytest.mark.parametrize("text,match", [("{", "cannot read plan"), ("[1, 2]", "JSON object"),
                                        ('{"plan_version": 7}', "plan_version 7"),
                                        ('{"amp": [1]}', "values must be")])
def test_bad_plan_files_give_one_line(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "plan.json"
    p.write_text(text)
    with pytest.raises(PlanFormatError, match=match) as e:
        load_plan(p)
    assert "\n" not in str(e.value)


def test_finding_validates_confidence_and_gain() -> None:
    with pytest.raises(ValueError, match="confidence"):
        _f("x", 0.1, "certain")
    with pytest.raises(ValueError, match="NaN"):
        _f("x", float("nan"), "low")


def test_plan_json_is_valid_for_json_readers(tmp_path: Path) -> None:
    save_plan(build_plan([_f("p", 0.1, "high", amp="bf16")]), tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["amp"] == "bf16"
