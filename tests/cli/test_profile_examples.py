"""Every example style, run plainly and under `throughput profile`: same exit code and stdout, the
right number of steps, phases that add up to the step wall time, and a report on disk.

Both runs are real processes forked from the warm zygote (tests/zygote.py): `python script.py` and
`throughput profile script.py` without paying torch's import twice per style. The fresh-interpreter
paths (`python -m throughput`, the console script, tracebacks) are tested in test_profile_cli.py."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import pytest

from tests.cli.profile_helpers import EXAMPLES, load_json, stdout_count
from tests.zygote import Finished, Zygote

# script -> (args, stdout label counting the steps, expected step rule). Three styles run by default;
# the rest are marked slow (two processes each): `pytest --runslow` or THROUGHPUT_SLOW=1.
STYLES = {
    "loader_workers_infinite": ((), "updates", "optimizer"),
    "manual_sgd": ((), "backward_calls", "backward"),
    "lbfgs_closure": ((), "updates", "optimizer"),
    "iterable_dataset": ((), "updates", "optimizer"),
    "manual_batching": ((), "updates", "optimizer"),
    "grad_accumulation": ((), "updates", "optimizer"),
    "library_trainer": ((), "updates", "optimizer"),
    "bf16_autocast": ((), "updates", "optimizer"),
    "exec_config": (("--max_iters=7", "--batch_size=4"), "updates", "optimizer"),
}
FAST = ("loader_workers_infinite", "manual_sgd", "iterable_dataset")  # LBFGS: in-process tests
NAMES = [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in STYLES]
Runs = tuple[Finished, Finished, Path]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, zygote: Zygote) -> Callable[[str], Runs]:
    """name -> (plain run, profiled run, report folder); each style runs once, both modes in parallel."""
    root = tmp_path_factory.mktemp("examples")
    cache: dict[str, Runs] = {}

    def get(name: str) -> Runs:
        if name not in cache:
            args, out, script = STYLES[name][0], root / name, str(EXAMPLES / f"{name}.py")
            plain = zygote.start([script, *args], root / f"{name}-plain", op="script", cwd=root)
            profiled = zygote.start(["profile", "--no-plots", "--out", str(out), script, *args],
                                    root / f"{name}-profiled", cwd=root)
            cache[name] = (plain.result(), profiled.result(), out)
        return cache[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_same_exit_code_and_stdout(runs: Callable[[str], Runs], name: str) -> None:
    plain, profiled, _ = runs(name)
    assert plain.returncode == 0, plain.stderr
    assert profiled.returncode == plain.returncode, profiled.stderr
    assert profiled.stdout == plain.stdout


@pytest.mark.parametrize("name", NAMES)
def test_steps_match_the_scripts_own_count(runs: Callable[[str], Runs], name: str) -> None:
    plain, _, out = runs(name)
    _, label, rule = STYLES[name]
    session = load_json(out / "session.json")
    assert len(session["steps"]) == stdout_count(plain.stdout, label)
    assert session["info"]["step_rule"] == rule
    assert session["info"]["end"] == "completed"


@pytest.mark.parametrize("name", NAMES)
def test_phases_add_up_to_step_wall_time(runs: Callable[[str], Runs], name: str) -> None:
    _, _, out = runs(name)
    for step in load_json(out / "session.json")["steps"]:
        wall = step["end_s"] - step["start_s"]
        covered = math.fsum(step["phase_s"].values())
        assert covered <= wall * 1.01 + 1e-9, f"step {step['index']}: phases {covered} > wall {wall}"
    summary = load_json(out / "summary.json")
    assert math.fsum(p["share"] for p in summary["phases"]) == pytest.approx(1.0, abs=0.01)
    measured_wall = summary["step_time"]["mean_s"] * summary["steps"]["measured"]
    assert math.fsum(p["total_s"] for p in summary["phases"]) == pytest.approx(measured_wall, rel=0.01)


@pytest.mark.parametrize("name", NAMES)
def test_report_written_and_printed_to_stderr(runs: Callable[[str], Runs], name: str) -> None:
    _, profiled, out = runs(name)
    assert (out / "report.md").read_text().startswith("# Training step profile")
    assert "verdict:" in profiled.stderr
    assert f"report: {out}/report.md" in profiled.stderr


@pytest.mark.slow
def test_grad_accumulation_reports_micro_steps(runs: Callable[[str], Runs]) -> None:
    plain, _, out = runs("grad_accumulation")
    summary = load_json(out / "summary.json")
    assert summary["micro_steps_per_step"] == stdout_count(plain.stdout, "micro_steps_per_update")  # 4
    steps = load_json(out / "session.json")["steps"]
    assert {s["samples"] for s in steps} == {4 * 4}   # 4 micro-batches of batch_size 4 per update


@pytest.mark.slow
def test_lbfgs_counts_the_batch_once_per_update(runs: Callable[[str], Runs]) -> None:
    _, _, out = runs("lbfgs_closure")
    steps = load_json(out / "session.json")["steps"]
    # 64 points per closure; LBFGS evaluates the closure up to 5 times per update on the same batch
    assert {s["samples"] for s in steps} == {64}
    assert all(s["phase_s"].get("optimizer", 0) > 0 for s in steps)


def test_tokens_and_padding_from_iterable_dataset(runs: Callable[[str], Runs]) -> None:
    _, _, out = runs("iterable_dataset")
    steps = load_json(out / "session.json")["steps"]
    assert {s["tokens"] for s in steps} == {8 * 16}          # batch 8 x seq_len 16
    # sequence i keeps 4 + i % 12 tokens: padding = 16 - that, summed over the batch's sequences
    assert all(s["padding_tokens"] is not None and 0 < s["padding_tokens"] < 8 * 16 for s in steps)


@pytest.mark.slow
def test_loader_context_and_checkpoint_phase(runs: Callable[[str], Runs]) -> None:
    _, _, out = runs("library_trainer")
    session = load_json(out / "session.json")
    context = {k: v for e in session["events"] if e["kind"] == "context" for k, v in e["detail"].items()}
    assert context["num_workers"] == 0 and context["batch_size"] == 8 and context["optimizer"] == "RMSprop"
    # one torch.save per epoch: the first lands inside step 11; the last follows the final update,
    # outside every step (time after the last optimizer step belongs to no step)
    assert sum(1 for s in session["steps"] if s["phase_s"].get("checkpoint", 0) > 0) == 1
    kinds = [f["rule_id"] for f in load_json(out / "summary.json")["findings"]]
    assert "bn_small_batch" in kinds   # BatchNorm1d trained on batches of 8 < 16


def test_manual_sgd_report_states_the_fallback_rule(runs: Callable[[str], Runs]) -> None:
    _, profiled, out = runs("manual_sgd")
    assert "no torch.optim optimizer was seen" in profiled.stderr
    assert "each backward() call ends a step" in (out / "report.md").read_text()


def test_worker_loader_batches_and_settings(runs: Callable[[str], Runs]) -> None:
    _, _, out = runs("loader_workers_infinite")
    session = load_json(out / "session.json")
    assert {s["samples"] for s in session["steps"]} == {8}      # DataLoader(batch_size=8), 2 workers
    context = {k: v for e in session["events"] if e["kind"] == "context" for k, v in e["detail"].items()}
    assert (context["num_workers"], context["batch_size"], context["optimizer"]) == (2, 8, "SGD")
    assert all(s["phase_s"].get("data", 0) > 0 for s in session["steps"])
