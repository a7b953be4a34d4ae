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
        parts += ["## py-spy: top functions by own time", ""]
        for role, title in (("main", "Main process"), ("worker", "DataLoader workers")):
            rows = [[h.function, f"{short_path(h.file)}:{h.line}", f"{h.own_s:.2f} s", percent(h.share), str(h.processes)]
                    for h in t.hot_functions if h.role == role]
            if rows:
                parts += [f"### {title}", "", tabulate(rows, headers=["function", "file:line", "own time", "share",
                                                                      "processes"],
                                                       tablefmt="github", disable_numparse=True), ""]
    return "\n".join(parts)
