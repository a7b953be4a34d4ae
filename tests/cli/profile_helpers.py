"""Run scripts plainly and under `python -m throughput profile`: as real subprocesses (fresh
interpreters), or as processes forked from the warm zygote (tests/zygote.py) where a fresh interpreter
is not what the test is about."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from tests.zygote import Finished, Zygote

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "zerocode"
DATA = REPO / "tests" / "data" / "zerocode"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")  # two CPU cores shared by parallel runs
    return env


def run_plain(script: Path, args: Sequence[str] = (), cwd: Path | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          cwd=cwd, env=_env(), timeout=timeout)


def run_profiled(script: Path | None, args: Sequence[str] = (), out: Path | None = None,
                 options: Sequence[str] = (), cwd: Path | None = None,
                 timeout: float = 120, plots: bool = False) -> subprocess.CompletedProcess[str]:
    """``throughput profile`` in a fresh interpreter; without the PNG plots unless ``plots`` (their
    drawing child is a second interpreter, and only the tests that read the plots need it)."""
    cmd = [sys.executable, "-m", "throughput", "profile", *_plots_option(plots), *options]
    if out is not None:
        cmd += ["--out", str(out)]
    cmd += ([str(script)] if script is not None else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=_env(), timeout=timeout)


def _plots_option(plots: bool) -> list[str]:
    return [] if plots else ["--no-plots"]


def forked_plain(zygote: Zygote, script: Path, args: Sequence[str], files: Path,
                 cwd: Path | None = None) -> Finished:
    """``python script args`` in a process forked from the zygote; stdout/stderr kept next to ``files``."""
    return zygote.start([str(script), *args], files, op="script", cwd=cwd).result()


def forked_profiled(zygote: Zygote, script: Path | None, args: Sequence[str] = (), out: Path | None = None,
                    options: Sequence[str] = (), cwd: Path | None = None, files: Path | None = None,
                    plots: bool = False) -> Finished:
    """``throughput profile [options] [--out out] script args`` forked from the zygote (plots as in
    ``run_profiled``)."""
    argv = ["profile", *_plots_option(plots), *options] + (["--out", str(out)] if out is not None else [])
    argv += ([str(script)] if script is not None else []) + list(args)
    where = files or (out.parent if out is not None else Path(cwd or ".")) / "profiled"
    return zygote.start(argv, where, cwd=cwd).result()


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def stdout_count(stdout: str, label: str) -> int:
    """The integer after ``label`` on the script's own output line ``"<label> N"``."""
    for line in stdout.splitlines():
        if line.startswith(label + " "):
            return int(line.split()[-1])
    raise AssertionError(f"the script printed no '{label} N' line:\n{stdout}")
