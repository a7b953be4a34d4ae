"""Run one row once, plainly or under ``throughput profile``, as real subprocesses.

Both modes get the same interpreter, environment (plus a fresh inductor cache each, so both compile
from scratch), working directory layout and arguments; only the launcher differs:
``python script.py`` / ``python -m torch.distributed.run ... script.py`` against
``python -m throughput profile --quiet --out OUT [--nproc-per-node 2] script.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compat.matrix import Row

ROWS_DIR = Path(__file__).resolve().parent / "rows"
TIMEOUT_S = 900.0
TIMED_OUT = 124  # the status `timeout` uses


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutput:
    """What one run left: exit status, output, wall time, and per rank its marks and session file."""

    mode: str                                   # "plain" or "profiled"
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    workdir: Path
    marks: dict[int, list[dict[str, Any]]]      # rank -> intervals the script timed
    notes: dict[int, dict[str, Any]]            # rank -> details compared but not judged
    updates_s: dict[int, list[float]]           # rank -> perf_counter at each optimizer update
    sessions: dict[int, Path]                   # rank -> session.json (profiled runs; only those written)
    merged: Path | None = None                  # ranks.json of a multi-rank profiled run


def command(row: Row, mode: str, out_dir: Path, workdir: Path) -> list[str]:
    script = [str(ROWS_DIR / row.script), *row.args, str(workdir)]
    if mode == "plain":
        if row.ranks == 1:
            return [sys.executable, *script]
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={row.ranks}",
                *script]
    ranks = ["--nproc-per-node", str(row.ranks)] if row.ranks > 1 else []
    return [sys.executable, "-m", "throughput", "profile", "--quiet", "--out", str(out_dir), *ranks, *script]


def run_once(row: Row, mode: str, run_dir: Path, timeout_s: float = TIMEOUT_S) -> RunOutput:
    """Run ``row`` in ``mode`` inside a new ``run_dir`` (its working directory)."""
    run_dir.mkdir(parents=True, exist_ok=False)
    workdir, out_dir = run_dir / "work", run_dir / "profile"
    workdir.mkdir()
    # Offline: the rows build everything locally, and a hub look-up would be a network call. One
    # intra-op thread per process (as torchrun sets for each rank): on a shared machine a descheduled
    # pool thread stalls every parallel op for a time slice, which swamps the steps being compared.
    env = dict(os.environ, PYTHONHASHSEED="0", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1",
               COMPAT_MARKS=str(run_dir / "marks-{rank}.json"),
               TORCHINDUCTOR_CACHE_DIR=str(run_dir / "inductor-cache"), **row.env)
    cmd = command(row, mode, out_dir, workdir)
    t0 = time.perf_counter()
    # A session of its own, so that a run past its time is ended with all its ranks and workers.
    proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        stderr += f"\n[compat] killed after {timeout_s:.0f} s\n"
        code = TIMED_OUT
    wall_s = time.perf_counter() - t0
    (run_dir / "stdout.txt").write_text(stdout)
    (run_dir / "stderr.txt").write_text(stderr)
    return RunOutput(mode=mode, returncode=code, stdout=stdout, stderr=stderr, wall_s=wall_s, workdir=workdir,
                     marks=_side(run_dir, row.ranks, "marks"), notes=_side(run_dir, row.ranks, "notes"),
                     updates_s=_side(run_dir, row.ranks, "updates_s"), sessions=_sessions(out_dir, row.ranks) if mode != "plain" else {},
                     merged=(out_dir / "ranks.json") if row.ranks > 1 and (out_dir / "ranks.json").exists() else None)


def _side(run_dir: Path, ranks: int, key: str) -> dict[int, Any]:
    """Per rank, ``key`` of the file the row script wrote at exit (``compat/rows/_common.py``)."""
    out = {}
    for r in range(ranks):
        path = run_dir / f"marks-{r}.json"
        if path.exists():
            out[r] = json.loads(path.read_text())[key]
    return out


def _sessions(out_dir: Path, ranks: int) -> dict[int, Path]:
    paths = {0: out_dir / "session.json"} if ranks == 1 else {
        r: out_dir / f"rank-{r}" / "session.json" for r in range(ranks)}
    return {r: p for r, p in paths.items() if p.exists()}
