"""What a report's plots need, and what every plot process shares: the job, the result, drawing it,
the one-line reply, and where a plot process can run (``plot_worker`` draws in a child started after the
run, ``plot_server`` in a process started with it)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from throughput.analysis.series import StepSeries


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


def draws_elsewhere() -> bool:
    """Whether plots are drawn in another process here: a second usable core (else that process would
    only take turns with this one) and matplotlib installed (else there is nothing to import early)."""
    return usable_cores() >= 2 and matplotlib_available()


def child_env() -> dict[str, str]:
    """The environment of a plot process: this one's, with this package importable."""
    package_root = str(Path(__file__).resolve().parents[2])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p))


def remove_partial_images(out: Path, pid: int) -> None:
    """The image process ``pid`` was writing when it was killed (``plots._save`` names it by pid)."""
    for tmp in out.glob(f".*.{pid}.tmp"):
        tmp.unlink(missing_ok=True)


def reply_line(result: PlotResult) -> bytes:
    """A plot process's one-line reply."""
    reply = {"missing": result.missing} if result.missing else {"files": [str(f) for f in result.files]}
    return (json.dumps(reply) + "\n").encode()


def parse_reply(returncode: int, out: bytes) -> PlotResult | None:
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
