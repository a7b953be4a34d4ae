"""Crash-proof: SIGKILL the training process at >= 10 random moments (some inside a checkpoint write),
resume each time, and end with parameters bit-identical to an uninterrupted run."""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.loop.helpers import Zygote, assert_tensors_equal, cli_args, final_state, newest_valid_step
from throughput.loop.checkpoint import PAUSE_ENV, TMP_PREFIX
from throughput.loop.metrics import read_metrics

STEPS = 300
SETS = (f"steps={STEPS}", "ckpt_every_steps=1", "keep_last=2", "eval_every=20")
KILLS = 20
MID_WRITE_ROUNDS = {2, 5, 8, 13, 17}  # rounds that wait for a half-written checkpoint before killing


def _log_size(out: Path) -> int:
    try:
        return (out / "metrics.jsonl").stat().st_size
    except FileNotFoundError:
        return 0


def _alive(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited, not yet reaped


def _wait_for(predicate, pid: int, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if not _alive(pid):
            return False
        time.sleep(0.005)
    raise AssertionError("the training process made no progress within 60 s")


def _half_written(ckpt_dir: Path, pid: int) -> bool:
    try:
        return any(p.name.startswith(TMP_PREFIX) and p.name.endswith(f"-{pid}") and p.stat().st_size > 0
                   for p in ckpt_dir.iterdir())
    except FileNotFoundError:  # the folder does not exist yet, or a file vanished while listing
        return False


def _kill_round(zygote: Zygote, out: Path, rnd: int, rng: random.Random) -> tuple[bool, bool]:
    """Start a resumed run, kill it; returns (killed while running, killed inside a checkpoint write)."""
    expected_resume = newest_valid_step(out / "checkpoints")
    mid_write = rnd in MID_WRITE_ROUNDS
    pid = zygote.spawn(cli_args(out, *SETS), env={PAUSE_ENV: "5.0"} if mid_write else {},
                       log=out.parent / "log.txt")
    try:
        if mid_write:
            # The writer pauses half-way through its temporary file: kill it right there.
            running = _wait_for(lambda: _half_written(out / "checkpoints", pid), pid)
        else:
            before = _log_size(out)  # grows when a step is logged (after its checkpoint)
            running = _wait_for(lambda: _log_size(out) > before, pid)
            time.sleep(rng.uniform(0.0, 0.03))  # a random moment: data, forward, backward, write, ...
        os.kill(pid, signal.SIGKILL)
    finally:
        code = zygote.wait(pid)
    if running:
        # No step lost beyond the last checkpoint: this process resumed at the newest valid checkpoint.
        mine = [r for r in read_metrics(out / "metrics.jsonl") if r.get("event") == "resumed" and r.get("pid") == pid]
        assert [r["step"] for r in mine] == ([expected_resume] if expected_resume else []), (rnd, mine)
    return running and code == -signal.SIGKILL, mid_write


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on tmpfs when there is one: a SIGKILL test needs no durable fsync, and on a shared VM
    disk each fsync costs ~15-30 ms, which would make every step of this test slow."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="throughput-crash-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_sigkill_at_random_moments_then_resume_is_bit_identical(run_dir: Path, zygote: Zygote) -> None:
    tmp_path = run_dir
    ref_out, out = tmp_path / "reference", tmp_path / "killed"
    # The uninterrupted reference runs alongside (on the other core) in its own folder.
    reference = zygote.spawn(cli_args(ref_out, *SETS), log=tmp_path / "reference.txt")
    _kill_loop(zygote, out)
    assert zygote.wait(zygote.spawn(cli_args(out, *SETS), log=tmp_path / "log.txt")) == 0
    assert zygote.wait(reference) == 0, (tmp_path / "reference.txt").read_text()
    _compare_with_reference(out, ref_out)


def _kill_loop(zygote: Zygote, out: Path) -> None:
    rng = random.Random(20261128)
    kills, mid_write_kills = 0, 0
    for rnd in range(KILLS + 6):
        if kills >= KILLS:
            break
        killed, mid = _kill_round(zygote, out, rnd, rng)
        kills += killed
        mid_write_kills += killed and mid
    assert kills >= 10, f"only {kills} kills landed while training ran"
    assert mid_write_kills >= 5


def _compare_with_reference(out: Path, ref_out: Path) -> None:
    got, want = final_state(out), final_state(ref_out)
    assert got["step"] == want["step"] == STEPS
    for key in ("model", "optimizer", "scheduler", "rng", "data"):
        assert_tensors_equal(got[key], want[key], key)
    # The log of the killed run has every step once, with the reference's losses exactly.
    got_log = {r["step"]: r for r in read_metrics(out / "metrics.jsonl") if r.get("kind") == "train"}
    want_log = {r["step"]: r for r in read_metrics(ref_out / "metrics.jsonl") if r.get("kind") == "train"}
    assert sorted(got_log) == list(range(1, STEPS + 1))
    assert [got_log[s]["loss"] for s in got_log] == [want_log[s]["loss"] for s in got_log]
    assert [got_log[s].get("val_loss") for s in got_log] == [want_log[s].get("val_loss") for s in got_log]
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(TMP_PREFIX)]
