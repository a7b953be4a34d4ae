"""The memory timeline plot (matplotlib, optional extra). Formatting only: the points come from
``analysis.memory.memory_timeline``."""

from __future__ import annotations

from pathlib import Path

from throughput.report.plots import _pyplot, _save


def plot_memory_timeline(timeline: dict[str, list[tuple[float, float]]], path: Path,
                         window_s: tuple[float, float] | None = None) -> Path:
    """One line per series in MiB over seconds since the first step; the view window shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for label, points in timeline.items():
        style = "o" if len(points) == 1 else "-"
        ax.plot([p[0] for p in points], [p[1] / 2**20 for p in points], style, label=label, linewidth=1.2,
                markersize=3)
    if window_s is not None:
        ax.axvspan(window_s[0], window_s[1], color="#000000", alpha=0.06, label="view window")
    ax.set(xlabel="seconds since first step", ylabel="MiB", title="Memory over the run")
    ax.legend(fontsize=8)
    return _save(fig, plt, path)
