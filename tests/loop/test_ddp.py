"""DDP through torchrun on CPU (gloo): 2 ranks x micro-batch 4 == 1 process x micro-batch 8."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.loop.helpers import MICRO_GPT, final_state, train_env

SETS = ["steps=4", "micro_batch_size={mbs}", "lr=1e-2", "warmup_steps=0", "clip_grad_norm=0", "eval_every=2",
        "eps=1e-6", "ckpt_every_steps=2"]


def _argv(out: Path, mbs: int) -> list[str]:
    argv = ["-m", "throughput", "train", str(MICRO_GPT), "--out", str(out), "--quiet"]
    for s in SETS:
        argv += ["--set", s.format(mbs=mbs)]
    return argv


@pytest.mark.slow
def test_two_ranks_match_one_process_with_the_global_batch(tmp_path: Path) -> None:
    env = train_env(MICRO_GPT_DROPOUT="0")  # both ranks seed alike; without dropout no RNG is drawn
    single = subprocess.run([sys.executable, *_argv(tmp_path / "one", 8)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert single.returncode == 0, single.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                "--no-python", sys.executable]
    ddp = subprocess.run(torchrun + _argv(tmp_path / "two", 4), env=env, capture_output=True, text=True,
                         timeout=120)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    # Rank r reads order[r::2] of each epoch's permutation, 4 at a time: together the same 8 rows as the
    # single process's batch, and the gradient is normalized by the tokens of both ranks.
    one, two = final_state(tmp_path / "one")["model"], final_state(tmp_path / "two")["model"]
    for key in one:
        assert torch.allclose(one[key], two[key], rtol=1e-5, atol=1e-6), key
