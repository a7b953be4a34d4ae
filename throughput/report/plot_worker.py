"""A report's plots, drawn in a child process while the parent writes the other files.

matplotlib's import (0.6-1.2 s on a 2-core VM) and the drawing (~0.4 s) were most of the post-run work,
and they need nothing the JSON files need: with a second core free, ``PlotProcess`` hands the bounded
series (a few thousand kept steps whatever the run's length) to ``python -m throughput.report.plot_worker``
and collects the file names at the end, so the post-run time is the longer of the two instead of their
sum. With one usable core, or when the child cannot be started, the same plots are drawn in this
process (``draw``). The child runs in a session of its own, so a Ctrl-C on the terminal reaches only the
parent, which decides (``throughput.cli.interrupts``) and kills the child when the report is aborted.

Protocol: the parent writes one pickled ``PlotJob`` to the child's stdin and closes it; the child
prints one JSON line, ``{"files": [...]}`` or ``{"missing": "why"}`` (matplotlib absent), and exits 0.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from throughput.analysis.series import StepSeries

CHILD_TIMEOUT_S = 120.0   # a child that draws longer than this is killed; the report says the plots are missing


@dataclass(frozen=True, slots=True, kw_only=True)
class PlotJob:
    """Everything the plots of one run need (bounded: the kept steps and the memory timeline)."""

    series: StepSeries
    memory: dict[str, list[tuple[float, float]]]
    out: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class PlotResult:
    files: tuple[Path, ...]
    missing: str | None = None   # why no plots were drawn (matplotlib absent, the child timed out)


def draw(job: PlotJob) -> PlotResult:
    """Draw the plots in this process. matplotlib absent: no files and the hint."""
    from throughput.report import plots

    series = job.series
    try:
        files = [plots.plot_step_breakdown(series, job.out / "step_breakdown.png")]
        if any(v is not None for v in series.tokens_per_s + series.samples_per_s):
            unit = "tokens" if any(v is not None for v in series.tokens_per_s) else "samples"
            files.append(plots.plot_throughput([("run", series)], job.out / "throughput.png", unit=unit))
        if any(v is not None for v in series.loss):
            files.append(plots.plot_loss([("run", series)], job.out / "loss.png"))
        if job.memory:
            from throughput.report.memory_plot import plot_memory_timeline
            files.append(plot_memory_timeline(job.memory, job.out / "memory.png"))
    except ImportError as e:
        return PlotResult(files=(), missing=str(e))
    return PlotResult(files=tuple(files))


def matplotlib_available() -> bool:
    """Without importing it (that is the cost the child saves). A module set to None in ``sys.modules``
    counts as absent, as ``import`` treats it."""
    if "matplotlib" in sys.modules:
        return sys.modules["matplotlib"] is not None
    return importlib.util.find_spec("matplotlib") is not None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class PlotProcess:
    """``start`` the child now, ``finish`` later; falls back to ``draw`` here when the child cannot run."""

    def __init__(self, job: PlotJob) -> None:
        self.job = job
        self._child: subprocess.Popen[bytes] | None = None

    def start(self) -> "PlotProcess":
        if usable_cores() < 2 or not matplotlib_available():
            return self
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p))
        try:
            self._child = subprocess.Popen([sys.executable, "-m", "throughput.report.plot_worker"],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, env=env, start_new_session=True)
            assert self._child.stdin is not None
            self._child.stdin.write(pickle.dumps(self.job, protocol=pickle.HIGHEST_PROTOCOL))
            self._child.stdin.close()
            self._child.stdin = None   # sent whole; communicate() must not flush it again
        except OSError:   # cannot start a process here (limits, a sandbox): draw in this process
            self.kill()
        return self

    def finish(self) -> PlotResult:
        """Wait for the child and return what it drew (or draw here if it never started)."""
        child = self._child
        if child is None:
            return draw(self.job)
        try:
            out, _ = child.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return PlotResult(files=(), missing=f"the plot process took over {CHILD_TIMEOUT_S:.0f} s and was stopped")
        finally:
            self._child = None
        reply = _parse(child.returncode, out)
        # A child that could not run (an interpreter that is not Python, a broken environment): drawn
        # here instead, as without a second core; at worst as slow as before, never fewer plots.
        return reply if reply is not None else draw(self.job)

    def kill(self) -> None:
        """Stop the child (a report aborted by a second Ctrl-C) and remove the image it was writing."""
        child, self._child = self._child, None
        if child is not None:
            child.kill()
            child.wait()
            for tmp in self.job.out.glob(f".*.{child.pid}.tmp"):   # its image half-written (plots._save)
                tmp.unlink(missing_ok=True)


def _parse(returncode: int, out: bytes) -> PlotResult | None:
    """The child's reply; None when it failed or said nothing readable."""
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        reply = json.loads(lines[-1]) if returncode == 0 and lines else None
    except ValueError:
        return None
    if not isinstance(reply, dict):
        return None
    if reply.get("missing"):
        return PlotResult(files=(), missing=str(reply["missing"]))
    return PlotResult(files=tuple(Path(f) for f in reply.get("files", ())))


def main() -> int:
    job = pickle.loads(sys.stdin.buffer.read())
    result = draw(job)
    reply = {"missing": result.missing} if result.missing else {"files": [str(f) for f in result.files]}
    print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
