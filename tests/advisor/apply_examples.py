"""The check behind ``test_apply_examples*.py``: every `apply` of every recommendation the advisor prints
for an example script or recipe runs and exits 0 (with --max-steps, so it is short).
``benchmarks/advice_apply.py`` goes further: it A/B-tests each measured gain against the applied command.

The targets are split over two test files so that ``--dist loadfile`` can put them on different pytest
workers: together they are the longest file of the suite (each advise run is several subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.zygote import Finished, Zygote
from throughput.advisor.apply import with_options

REPO = Path(__file__).resolve().parents[2]
# Short settings: the test is about the commands, not the numbers (one confirmation round, short windows).
# The time budget counts from the start of `advise` and is checked before each new knob: 30 s leaves room
# for the profiling run and the baseline probe (about 7 s each on an idle 2-core machine) before the
# worker knob, which the assertions below need, and stops the search from wandering much further.
QUICK = ["--probe-steps", "2", "--confirm-rounds", "1", "--confirm-window", "0.3", "--time-budget", "30"]


def _advise(zygote: Zygote, target: list[str], cwd: Path) -> dict[str, Any]:
    """``throughput advise`` forked from the warm zygote (its probes are fresh interpreters, as always)."""
    out = zygote.start(["advise", "--format", "json", *QUICK, *target], cwd / "advise-output", cwd=cwd).result()
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _run(zygote: Zygote, argv: list[str], files: Path, cwd: Path) -> Finished:
    """The apply command as ``throughput`` runs it, in a process forked from the warm zygote (a fresh
    interpreter would import torch again: seconds of CPU per command, and the command is what is tested)."""
    assert argv[0] == "throughput"
    return zygote.start(argv[1:], files, cwd=cwd).result()


def without_out(argv: list[str]) -> tuple[str, ...]:
    """``argv`` less its ``--out DIR``: the only part of an apply command the test replaces by its own."""
    kept: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        else:
            kept.append(a)
    return tuple(kept)


def distinct_commands(advice: dict[str, Any]) -> list[list[str]]:
    """Every apply command of the recommendations and of the plan, each distinct one once: the plan's
    apply is often a recommendation's with another --out, which the test replaces anyway."""
    recs = advice["recommendations"]
    commands = [r["apply"] for r in recs if r["apply"]]
    commands += [advice["plan"]["apply"]] if advice["plan"].get("apply") else []
    seen: set[tuple[str, ...]] = set()
    distinct = []
    for argv in commands:
        if without_out(argv) not in seen:
            seen.add(without_out(argv))
            distinct.append(argv)
    return distinct


def check_every_apply_command_runs(target: list[str], expected: str, tmp_path: Path, zygote: Zygote) -> None:
    target = [str(REPO / t) if t.endswith(".py") else t for t in target]
    advice = _advise(zygote, target, tmp_path)
    recs = advice["recommendations"]
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids))                                   # no duplicates
    assert all(r["expected_gain"] is None or round(r["expected_gain"] * 100) != 0 for r in recs)   # no "+0%"
    if expected == "probe.num_workers":   # input-bound: workers measured alone, with the command that applies them
        assert expected in ids and next(r for r in recs if r["id"] == expected)["measured"]
    if expected == "data.worker_split":   # the stream is not split: workers are never proposed
        assert expected in ids and not any("num_workers" in r["settings"] for r in recs)
        assert "get_worker_info" in next(r for r in recs if r["id"] == expected)["code_change"]
    for r in recs:
        assert r["apply"] or r["code_change"], r                      # every recommendation says how
    commands = distinct_commands(advice)
    assert commands or expected == "data.worker_split", advice         # a measured recommendation has one
    for i, argv in enumerate(commands):
        assert argv[0] == "throughput" and argv[1] in ("profile", "train")
        out_dir = str(tmp_path / f"apply-{i}")
        # no PNGs: the command's options are what is checked, and the plots' drawing child is another interpreter
        short = ["--max-steps", "4", "--out", out_dir, "--quiet"] + (["--no-plots"] if argv[1] == "profile" else [])
        done = _run(zygote, with_options(argv, short), tmp_path / f"apply-{i}-output", tmp_path)
        assert done.returncode == 0, (argv, done.stderr[-2000:])
