"""Markdown sections for telemetry (GPU, host) and the py-spy hot functions. Formatting only."""

from __future__ import annotations

from tabulate import tabulate

from throughput.analysis.telemetry import MetricStats, TelemetrySummary
from throughput.report.format import percent

_UNITS = {"_pct": "%", "_bytes": "bytes", "_w": "W", "_mhz": "MHz"}


def _value(metric: str, value: float) -> str:
    if metric.endswith("_bytes"):
        return f"{value / 2**20:.0f} MiB"
    for suffix, unit in _UNITS.items():
        if metric.endswith(suffix):
            return f"{value:.1f} {unit}"
    return f"{value:g}"


def short_path(path: str) -> str:
    """Installed-package and stdlib paths from their package root ('torch/nn/modules/linear.py')."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    parts = path.split("/lib/python", 1)
    if len(parts) == 2 and "/" in parts[1]:
        return "python" + parts[1]
    return path


def _rows(stats: tuple[MetricStats, ...]) -> list[list[str]]:
    return [[s.source, s.metric, _value(s.metric, s.mean), _value(s.metric, s.max), str(s.count)] for s in stats]


def render_telemetry_md(t: TelemetrySummary) -> str:
    """The '## Telemetry' and '## py-spy' sections; empty string when there is nothing to show (why a
    sampler did not run is in the report's notes)."""
    parts: list[str] = []
    head = ["source", "metric", "mean", "max", "samples"]
    if t.gpu or t.host:
        parts += ["## Telemetry", ""]
        if t.gpu:
            parts += [tabulate(_rows(t.gpu), headers=head, tablefmt="github", disable_numparse=True), ""]
        if t.throttling:
            parts += [f"GPU clocks slowed by: {', '.join(t.throttling)}", ""]
        if t.host:
            parts += ["Host (CPU% of one core; `worker:<pid>` are DataLoader workers):", "",
                      tabulate(_rows(t.host), headers=head, tablefmt="github", disable_numparse=True), ""]
    if t.hot_functions:
        parts += ["## py-spy: top functions by own time", ""] + _pyspy_lines(t)
        for role, title in (("main", "Main process"), ("worker", "DataLoader workers")):
            for idle in (False, True):
                rows = [[h.function, f"{short_path(h.file)}:{h.line}", f"{h.own_s:.2f} s", percent(h.share),
                         str(h.processes)] for h in t.hot_functions if h.role == role and h.idle == idle]
                if rows:
                    heading = f"### {title}" + (": idle waits" if idle else "")
                    parts += [heading, "", tabulate(rows, headers=["function", "file:line", "own time", "share",
                                                                   "processes"],
                                                    tablefmt="github", disable_numparse=True), ""]
    return "\n".join(parts)


def _pyspy_lines(t: TelemetrySummary) -> list[str]:
    w = t.pyspy
    if w is None:
        return []
    if w.loop_found:
        scope = (f"Main thread: the training loop only ({w.before_s:.2f} s of samples before the first step and "
                 f"{w.after_s:.2f} s after the last are left out).")
    else:
        scope = "Main thread: no step phase was seen in its samples, so the tables cover the whole run."
    return [scope + " Idle waits (blocking reads of queues, locks, sleeps) are listed apart from busy time. "
            f"Flame graph of everything: `{w.profile}` (open at https://www.speedscope.app).", ""]
