"""Every `apply` of every recommendation the advisor prints for the example scripts and a recipe runs and
exits 0 (with --max-steps, so it is short). `benchmarks/advice_apply.py` goes further: it A/B-tests each
measured gain against the applied command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from throughput.advisor.apply import with_options

REPO = Path(__file__).resolve().parents[2]
# Short settings: the test is about the commands, not the numbers (one confirmation round, short windows).
# The time budget stops the search before it tries a second knob (prefetch depth) but after the baseline
# and the first worker probe (it is checked before each new knob).
QUICK = ["--probe-steps", "2", "--confirm-rounds", "1", "--confirm-window", "0.3", "--time-budget", "30"]
TARGETS = [
    (["examples/zerocode/slow_loader.py", "--steps", "60"], "probe.num_workers"),
    (["examples/zerocode/unsharded_stream.py", "--steps", "60"], "data.worker_split"),
    (["--recipe", "examples/recipes/tiny_cnn.py"], "probe.num_workers"),
]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def _advise(target: list[str], cwd: Path) -> dict:  # type: ignore[type-arg]
    out = subprocess.run([sys.executable, "-m", "throughput", "advise", "--format", "json", *QUICK, *target],
                         capture_output=True, text=True, timeout=600, cwd=cwd, env=_env())
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "throughput"
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=_env())


@pytest.mark.slow
@pytest.mark.parametrize("target, expected", TARGETS, ids=["slow_loader", "unsharded_stream", "tiny_cnn_recipe"])
def test_every_apply_command_runs(target: list[str], expected: str | None, tmp_path: Path) -> None:
    target = [str(REPO / t) if t.endswith(".py") else t for t in target]
    advice = _advise(target, tmp_path)
    recs = advice["recommendations"]
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids))                                   # no duplicates
    assert all(r["expected_gain"] is None or round(r["expected_gain"] * 100) != 0 for r in recs)   # no "+0%"
    if expected == "probe.num_workers":   # input-bound: workers measured alone, with the command that applies them
        assert expected in ids and next(r for r in recs if r["id"] == expected)["measured"]
    if expected == "data.worker_split":   # the stream is not split: workers are never proposed
        assert expected in ids and not any("num_workers" in r["settings"] for r in recs)
        assert "get_worker_info" in next(r for r in recs if r["id"] == expected)["code_change"]
    commands = [r["apply"] for r in recs if r["apply"]] + ([advice["plan"]["apply"]] if advice["plan"].get("apply") else [])
    for r in recs:
        assert r["apply"] or r["code_change"], r                      # every recommendation says how
    for i, argv in enumerate(commands):
        assert argv[0] == "throughput" and argv[1] in ("profile", "train")
        out_dir = str(tmp_path / f"apply-{i}")
        opts = ["--max-steps", "4", "--out", out_dir] + (["--quiet"] if argv[1] == "profile" else ["--quiet"])
        done = _run(with_options(argv, opts), tmp_path)
        assert done.returncode == 0, (argv, done.stderr[-2000:])
