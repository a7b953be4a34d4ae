"""PNG plots of a run (matplotlib is an optional extra: `pip install 'throughput[plots]'`).

Renderers only: the numbers come from ``analysis.series.step_series`` and the loss findings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from throughput.analysis.series import StepSeries

PLOTS_HINT = "plots need matplotlib: pip install 'throughput[plots]' (make demo installs it)"
_COLORS = {"data": "#d62728", "h2d": "#9467bd", "forward": "#1f77b4", "backward": "#2ca02c",
           "optimizer": "#ff7f0e", "eval": "#8c564b", "checkpoint": "#e377c2", "other": "#bbbbbb"}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(PLOTS_HINT) from e
    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt
    return plt


def plot_step_breakdown(series: StepSeries, path: Path, title: str = "Step time by phase") -> Path:
    """Stacked bars: each step's wall time split by phase (exclusive), warm-up steps shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    bottom = [0.0] * len(series.steps)
    for name in series.phases:
        values_ms = [v * 1e3 for v in series.phase_s[name]]
        ax.bar(series.steps, values_ms, bottom=bottom, width=1.0, label=name,
               color=_COLORS.get(name), linewidth=0)
        bottom = [b + v for b, v in zip(bottom, values_ms)]
    if series.warmup_steps:
        ax.axvspan(-0.5, series.warmup_steps - 0.5, color="#000000", alpha=0.06, label="warm-up")
    ax.set(xlabel="step", ylabel="ms", title=title)
    ax.set_ylim(0, max(bottom, default=1.0) * 1.3 or 1.0)   # headroom for the legend
    ax.legend(loc="upper right", fontsize=8, ncol=5)
    return _save(fig, plt, path)


def plot_throughput(runs: Sequence[tuple[str, StepSeries]], path: Path, unit: str = "tokens") -> Path:
    """Throughput over wall-clock time, one line per run (before/after)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for label, series in runs:
        values = series.tokens_per_s if unit == "tokens" else series.samples_per_s
        points = [(t, v) for t, v in zip(series.end_s, values) if v is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, linewidth=1.2)
    ax.set(xlabel="seconds since first step", ylabel=f"{unit}/s", title=f"Throughput ({unit}/s per step)")
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def plot_loss(runs: Sequence[tuple[str, StepSeries]], path: Path,
              flagged: Sequence[tuple[str, int, str]] = ()) -> Path:
    """Loss per step, one line per run; ``flagged`` = (run label, step, rule id) marked with a cross."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for label, series in runs:
        points = [(s, v) for s, v in zip(series.steps, series.loss) if v is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, linewidth=1.2)
            by_step = dict(points)
            marks = [(step, by_step[step]) for run, step, _ in flagged if run == label and step in by_step]
            if marks:
                ax.scatter([m[0] for m in marks], [m[1] for m in marks], marker="x", color="red", zorder=3,
                           label=f"{label}: flagged")
    ax.set(xlabel="step", ylabel="loss", title="Training loss")
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
