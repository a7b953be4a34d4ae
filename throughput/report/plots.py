"""PNG plots of a run (matplotlib is an optional extra: `pip install 'throughput[plots]'`).

Renderers only: the numbers come from ``analysis.series`` (kept steps, rolling bands) and the loss
findings. Every plot draws a bounded number of points whatever the run's length.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from throughput.analysis.series import StepSeries, measured_points, rolling_band, top_phases
from throughput.session.retention import FOLDED_PHASE

PLOTS_HINT = "plots need matplotlib: pip install 'throughput[plots]' (make demo installs it)"
_COLORS = {"data": "#d62728", "h2d": "#9467bd", "forward": "#1f77b4", "backward": "#2ca02c",
           "optimizer": "#ff7f0e", "eval": "#8c564b", "checkpoint": "#e377c2", "other": "#bbbbbb"}
_MORE_COLORS = ("#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#98df8a", "#ffbb78", "#c5b0d5", "#c49c94")
_FOLDED_COLOR = "#555555"
#: Phases drawn one by one in the step breakdown; the rest are drawn as one "<n> more phases" band. A
#: legend of a dozen entries is still read at a glance, and each band costs a rolling window's work.
BREAKDOWN_PHASES = 10


_MARGINS = {"left": 0.08, "right": 0.98, "top": 0.92, "bottom": 0.13, "hspace": 0.12}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(PLOTS_HINT) from e
    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt
    return plt


def warm_up() -> None:
    """Import matplotlib and draw a small figure with text to memory: the first real plot then finds the
    font, the Agg renderer and the PNG writer loaded (``plot_server`` calls this while the run trains)."""
    import io
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1], label="warm-up")
    ax.fill_between([0, 1], [0, 0], [1, 1], alpha=0.2)
    ax.set(title="warm-up", xlabel="step")
    ax.legend()
    try:
        fig.savefig(io.BytesIO(), dpi=100, format="png")
    finally:
        plt.close(fig)


def plot_step_breakdown(series: StepSeries, path: Path, title: str = "Step time by phase") -> Path:
    """Readable at any length: above, the step time's rolling median with its p5..p95 band over the
    step index, the slowest kept steps as dots and the warm-up steps apart (grey crosses, drawn at the
    top edge when they are off the scale); below, the rolling mean of each phase, stacked (means add
    up to the mean step time): the ``BREAKDOWN_PHASES`` phases with the most time, the rest as one band
    (``analysis.series.top_phases``), so a run with hundreds of phase names draws a dozen bands."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(1, 1),
                                      gridspec_kw=_MARGINS)
    steps, durations = measured_points(series, series.duration_s)
    band = rolling_band(steps, [d * 1e3 for d in durations])
    ceiling = 1.0
    if band is not None:
        top.fill_between(band.steps, band.p5, band.p95, color="#1f77b4", alpha=0.2, linewidth=0,
                         label=f"p5..p95 (rolling {band.window} steps)")
        top.plot(band.steps, band.median, color="#1f77b4", linewidth=1.2, label="median")
        ceiling = max(band.p95) * 1.6 or 1.0
    elif durations:
        top.plot(steps, [d * 1e3 for d in durations], color="#1f77b4", marker="o", label="step")
        ceiling = max(durations) * 1e3 * 1.6 or 1.0
    _outliers(top, series, ceiling)
    top.set(ylabel="step ms", title=title)
    top.set_ylim(0, ceiling)
    top.legend(loc="upper right", fontsize=7, ncol=4)
    x_for_stack: tuple[int, ...] = ()
    stacks = []
    shown = top_phases(series, BREAKDOWN_PHASES)
    fold = set(shown.phases) - set(series.phases)   # the "<n> more phases" band, if the rest was folded
    for name in shown.phases:
        xs, values = measured_points(shown, shown.phase_s[name])
        phase_band = rolling_band(xs, [v * 1e3 for v in values], band.window if band is not None else None)
        if phase_band is not None:
            x_for_stack = phase_band.steps
            stacks.append((name, phase_band.mean))
    if stacks:
        bottom.stackplot(x_for_stack, [v for _, v in stacks], labels=[n for n, _ in stacks],
                         colors=_phase_colors([n for n, _ in stacks], fold), linewidth=0)
        bottom.legend(loc="upper right", fontsize=7, ncol=5)
    bottom.set(xlabel="step", ylabel="ms (rolling mean)")
    return _save(fig, plt, path)


def _phase_colors(names: Sequence[str], fold: set[str]) -> list[str]:
    """The standard phases' own colours, grey for folded ones (this plot's band and the capture's
    ``FOLDED_PHASE``), and the other phases' from a cycle."""
    more = iter(_MORE_COLORS * (1 + len(names) // len(_MORE_COLORS)))
    return [_COLORS[n] if n in _COLORS else _FOLDED_COLOR if n in fold or n == FOLDED_PHASE else next(more)
            for n in names]


def _outliers(ax: Any, series: StepSeries, ceiling: float) -> None:
    """Warm-up steps (grey crosses) and the slowest kept steps (dots), clipped to the top edge."""
    even = series.even or (True,) * len(series.steps)
    warm = [(i, d * 1e3) for i, d in zip(series.steps, series.duration_s) if i < series.warmup_steps]
    slow = [(i, d * 1e3) for i, d, e in zip(series.steps, series.duration_s, even)
            if not e and i >= series.warmup_steps]
    for points, style in ((warm, {"marker": "x", "color": "#777777", "label": "warm-up"}),
                          (slow, {"marker": ".", "color": "#d62728", "label": "slowest kept"})):
        if points:
            ax.scatter([p[0] for p in points], [min(p[1], ceiling * 0.98) for p in points], s=12, zorder=3, **style)
            off = [p for p in points if p[1] > ceiling]
            if off:
                ax.annotate(f"{len(off)} off scale (max {max(p[1] for p in off):.3g} ms)",
                            (off[0][0], ceiling * 0.98), fontsize=7, xytext=(4, -10), textcoords="offset points")


def plot_throughput(runs: Sequence[tuple[str, StepSeries]], path: Path, unit: str = "tokens") -> Path:
    """Throughput per step over the step index: rolling median and p5..p95 band, one per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5), gridspec_kw=_MARGINS)
    for label, series in runs:
        steps, values = measured_points(series, series.tokens_per_s if unit == "tokens" else series.samples_per_s)
        band = rolling_band(steps, values)
        if band is not None:
            line = ax.plot(band.steps, band.median, label=f"{label} (median)", linewidth=1.2)
            ax.fill_between(band.steps, band.p5, band.p95, alpha=0.2, linewidth=0, color=line[0].get_color())
        elif values:
            ax.plot(steps, values, label=label, marker="o")
    ax.set(xlabel="step", ylabel=f"{unit}/s", title=f"Throughput ({unit}/s per step, rolling median, p5..p95)")
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def plot_loss(runs: Sequence[tuple[str, StepSeries]], path: Path,
              flagged: Sequence[tuple[str, int, str]] = ()) -> Path:
    """Loss over the kept steps (thin), its rolling median, one per run; ``flagged`` = (run label, step,
    rule id) marked with a cross."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5), gridspec_kw=_MARGINS)
    for label, series in runs:
        points = [(s, v) for s, v in zip(series.steps, series.loss) if v is not None]
        if points:
            line = ax.plot([p[0] for p in points], [p[1] for p in points], label=label, linewidth=0.6, alpha=0.6)
            band = rolling_band([p[0] for p in points], [p[1] for p in points])
            if band is not None and len(points) > 40:
                ax.plot(band.steps, band.median, linewidth=1.4, color=line[0].get_color(),
                        label=f"{label} (rolling median)")
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
    # Fixed margins (set where the figure is made), not tight_layout: its extra text-layout pass was
    # most of a plot's cost, and post-run work must stay within seconds.
    # Drawn to a temp file and renamed: a report stopped mid-plot (Ctrl-C, a killed plot process)
    # leaves no half-written image.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
