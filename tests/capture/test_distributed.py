"""Multi-rank profiling with a real torchrun: 2 ranks on CPU over gloo, rank 1 slowed in data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from throughput.capture.distributed import (
    RankEnv,
    rank_env,
    rank_out_dir,
    rank_session_paths,
    torchrun_command,
)

SCRIPT = Path(__file__).with_name("ddp_straggler_script.py")


def test_torchrun_two_ranks_names_the_slow_rank_and_phase(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [p.parent.name for p in rank_session_paths(tmp_path)] == ["rank-0", "rank-1"]
    merged = subprocess.run([sys.executable, "-m", "throughput", "ranks", str(tmp_path), "--format", "md"],
                            capture_output=True, text=True, timeout=60)
    assert merged.returncode == 0, merged.stderr
    # rank 1 sleeps 50 ms per batch in __getitem__, which is inside its 'data' phase
    assert "straggler: rank 1, phase 'data'" in merged.stdout
    data = json.loads((tmp_path / "ranks.json").read_text())
    assert data["straggler"]["rank"] == 1 and data["straggler"]["phase"] == "data"
    # the ranks' median of data is the midpoint of a ~0 ms and a ~50 ms rank, so the excess is ~25 ms
    assert 0.015 < data["straggler"]["excess_s"] < 0.05
    # rank 0 waits for rank 1 inside backward's all-reduce: most of the 50 ms shows up there
    assert data["collective_wait_s"]["0"] > 0.025 and data["collective_wait_s"]["1"] == 0.0
    trace = json.loads((tmp_path / "trace.json").read_text())
    assert {e["pid"] for e in trace["traceEvents"] if e["ph"] == "X"} == {0, 1}
    assert (tmp_path / "ranks.md").read_text().startswith("# throughput: multi-rank report")


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
