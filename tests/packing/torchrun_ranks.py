"""Run a script under real torchrun: 2 ranks on this machine (gloo), one thread each (never collected)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_two_ranks(script: Path, *args: str, cwd: Path, timeout_s: float = 180) -> None:
    """Fails the calling test, with the ranks' stderr, unless torchrun exits 0."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script), *args], capture_output=True, text=True, env=env, timeout=timeout_s, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
