"""Rank environment, rank folders and the torchrun command (the real 2-rank runs are in
tests/cli/test_profile_ranks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from throughput.capture.distributed import (
    RankEnv,
    rank_env,
    rank_out_dir,
    torchrun_command,
)


def test_rank_env_and_dirs(tmp_path: Path) -> None:
    assert rank_env({}) is None
    assert rank_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == RankEnv(rank=3, world_size=4, local_rank=1)
    with pytest.raises(ValueError, match="RANK=4 must be in"):
        rank_env({"RANK": "4", "WORLD_SIZE": "4"})
    assert rank_out_dir(tmp_path, {"RANK": "1", "WORLD_SIZE": "2"}) == tmp_path / "rank-1"
    assert rank_out_dir(tmp_path, {}) == tmp_path


def test_torchrun_command() -> None:
    cmd = torchrun_command(2, ["train.py", "--lr", "1"], "out", profile_args=["--max-steps", "5"])
    assert cmd[1:] == ["-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone", "-m", "throughput",
                       "profile", "--out", "out", "--max-steps", "5", "train.py", "--lr", "1"]
    multi = torchrun_command(8, ["t.py"], "/shared/out", nnodes=2, rdzv_endpoint="node0:29500", node_rank=1)
    assert "--nnodes=2" in multi and "--rdzv-endpoint=node0:29500" in multi and "--standalone" not in multi
    with pytest.raises(ValueError, match="rendezvous endpoint"):
        torchrun_command(8, ["t.py"], "o", nnodes=2)
