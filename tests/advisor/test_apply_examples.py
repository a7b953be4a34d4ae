"""Every `apply` of every recommendation the advisor prints for the example scripts and a recipe runs and
exits 0 (the check is in ``apply_examples.py``; slow_loader, the longest, has a file of its own so that
it can run on the other pytest worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.advisor.apply_examples import check_every_apply_command_runs, distinct_commands, without_out
from tests.zygote import Zygote

TARGETS = [
    (["examples/zerocode/unsharded_stream.py", "--steps", "60"], "data.worker_split"),
    (["--recipe", "examples/recipes/tiny_cnn.py"], "probe.num_workers"),
]


@pytest.mark.slow
@pytest.mark.parametrize("target, expected", TARGETS, ids=["unsharded_stream", "tiny_cnn_recipe"])
def test_every_apply_command_runs(target: list[str], expected: str, tmp_path: Path, zygote: Zygote) -> None:
    check_every_apply_command_runs(target, expected, tmp_path, zygote)


def test_the_plan_apply_that_only_differs_by_out_is_run_once() -> None:
    rec = ["throughput", "train", "r.py", "--set", "num_workers=2", "--out", "runs/r-probe-num_workers"]
    plan = ["throughput", "train", "r.py", "--set", "num_workers=2", "--out", "runs/r-plan"]
    other = ["throughput", "train", "r.py", "--set", "num_workers=4", "--out", "runs/r-plan"]
    advice = {"recommendations": [{"apply": rec}, {"apply": None}], "plan": {"apply": plan}}
    assert distinct_commands(advice) == [rec]
    assert distinct_commands({**advice, "plan": {"apply": other}}) == [rec, other]
    assert without_out(["throughput", "profile", "--out", "x", "s.py", "--out", "y"]) == \
        ("throughput", "profile", "s.py")
