"""`throughput profile` on 2 ranks (CPU, gloo) of an unmodified DDP script with a slow rank 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.profile_helpers import DATA, _env, run_profiled

SCRIPT = DATA / "ddp_slow_rank.py"


def _check_merged(out: Path) -> None:
    assert sorted(p.name for p in out.glob("rank-*")) == ["rank-0", "rank-1"]
    ranks = json.loads((out / "ranks.json").read_text())
    # rank 1 sleeps 50 ms per batch inside its DataLoader: zero-code hooks time that as 'data'
    assert (ranks["straggler"]["rank"], ranks["straggler"]["phase"]) == (1, "data")
    assert ranks["collective_wait_s"]["0"] > 0.025    # rank 0 waits ~50 ms in backward's all-reduce
    assert "straggler: rank 1, phase 'data'" in (out / "ranks.md").read_text()


def test_nproc_per_node_launches_and_merges(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    proc = run_profiled(SCRIPT, ["12"], out, options=["--nproc-per-node", "2", "--no-telemetry"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_merged(out)
    assert "merged report:" in proc.stderr
    trace = json.loads((out / "trace.json").read_text())
    assert {e["pid"] for e in trace["traceEvents"] if e["ph"] == "X"} == {0, 1}   # one track per rank
    again = subprocess.run([sys.executable, "-m", "throughput", "ranks", str(out), "--format", "md"],
                           capture_output=True, text=True, env=_env(), timeout=60)
    assert again.returncode == 0 and again.stdout.startswith("# throughput: multi-rank report")


@pytest.mark.slow   # ~18 s; the rank-0 merge itself is covered fast in tests/cli/test_multirank.py
def test_user_started_torchrun_rank0_merges(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "throughput", "profile", "--no-plots", "--out", str(out), "--no-telemetry", str(SCRIPT), "12"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_merged(out)
