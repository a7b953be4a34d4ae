"""Shared helpers for the loop tests: run ``throughput train`` as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from tests.zygote import Zygote  # noqa: F401  (re-exported: the loop tests' forking parent)
from throughput.loop.checkpoint import list_checkpoints, read_checkpoint

REPO = Path(__file__).resolve().parents[2]
MICRO_GPT = REPO / "tests" / "loop" / "micro_gpt.py"


def train_env(**extra: str) -> dict[str, str]:
    """One intra-op thread (same float reduction order in every process) and the repo on the path."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def train_argv(out: Path, *sets: str, recipe: Path = MICRO_GPT, resume: bool = True) -> list[str]:
    argv = [sys.executable, "-m", "throughput", "train", str(recipe), "--out", str(out), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    return argv + (["--resume"] if resume else [])


def run_train(out: Path, *sets: str, recipe: Path = MICRO_GPT, resume: bool = True,
              env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(train_argv(out, *sets, recipe=recipe, resume=resume), env=env or train_env(),
                          capture_output=True, text=True, timeout=timeout)


def newest_valid_step(ckpt_dir: Path) -> int:
    """Step of the newest checkpoint that verifies (0 when none does)."""
    for step, path in reversed(list_checkpoints(ckpt_dir)):
        try:
            read_checkpoint(path)
        except Exception:
            continue
        return step
    return 0


def final_state(out: Path) -> dict[str, Any]:
    step, path = list_checkpoints(out / "checkpoints")[-1]
    return read_checkpoint(path)


def assert_tensors_equal(a: Any, b: Any, where: str = "") -> None:
    """Bit-for-bit equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"differs at {where}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"keys differ at {where}"
        for k in a:
            assert_tensors_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"lengths differ at {where}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_tensors_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def cli_args(out: Path, *sets: str, recipe: Path = MICRO_GPT, resume: bool = True) -> list[str]:
    """``train`` arguments for Zygote.spawn (train_argv without the interpreter and ``-m throughput``)."""
    return train_argv(out, *sets, recipe=recipe, resume=resume)[3:]
