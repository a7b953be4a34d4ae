"""Renderers for a run comparison (table, markdown, json). Formatting only."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any, Callable

from tabulate import tabulate

from throughput.analysis.compare import Comparison
from throughput.report.format import percent, rate, seconds


def _ratio(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}x"


def _rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    head = ["phase", "A mean", "B mean", "A share", "B share", "B/A", "moved"]
    rows = [[p.phase, seconds(p.a_mean_s), seconds(p.b_mean_s), percent(p.a_share), percent(p.b_share),
             _ratio(p.ratio), ("faster" if p.delta_s < 0 else "slower") if p.moved else ""] for p in c.phases]
    return head, rows


def _rate_rows(c: Comparison) -> list[list[str]]:
    rows = [["step time (mean)", seconds(c.a_step_mean_s), seconds(c.b_step_mean_s)],
            ["step time (median)", seconds(c.a_step_median_s), seconds(c.b_step_median_s)],
            ["measured steps", str(c.a_steps), str(c.b_steps)]]
    if c.a_samples_per_s is not None or c.b_samples_per_s is not None:
        rows.append(["samples/s", rate(c.a_samples_per_s, "samples/s"), rate(c.b_samples_per_s, "samples/s")])
    if c.a_tokens_per_s is not None or c.b_tokens_per_s is not None:
        rows.append(["tokens/s", rate(c.a_tokens_per_s, "tokens/s"), rate(c.b_tokens_per_s, "tokens/s")])
    return rows


def _settings_rows(c: Comparison) -> list[list[str]]:
    return [[d.name, d.a, d.b] for d in c.settings]


def _settings_block(c: Comparison, fmt: str) -> list[str]:
    if not c.settings:
        return ["what differs: nothing recorded differs (same command line, overrides, environment, versions)"]
    return ["what differs:", tabulate(_settings_rows(c), headers=["setting", "A", "B"], tablefmt=fmt,
                                      disable_numparse=True)]


def _headline(c: Comparison) -> list[str]:
    # the headline's own rounding decides "same": 1.00x is neither faster nor slower
    word = "the same speed" if _ratio(c.speedup) == _ratio(1.0) else "faster" if c.speedup > 1 else "slower"
    lines = [f"B ({c.b_run_id}) vs A ({c.a_run_id}): speedup {_ratio(c.speedup)} (B is {word})"]
    moved = c.moved
    lines.append("phases that moved: " + (", ".join(
        f"{p.phase} {seconds(p.a_mean_s)} -> {seconds(p.b_mean_s)}" for p in moved) if moved else
        "none beyond noise"))
    return lines + [f"note: {n}" for n in c.notes]


def render_compare_table(c: Comparison) -> str:
    head, rows = _rows(c)
    lines = _headline(c)
    parts = lines[:1] + [""] + _settings_block(c, "simple") + [""] + lines[1:] + [
        "", tabulate(rows, headers=head, tablefmt="simple", disable_numparse=True), "",
        tabulate(_rate_rows(c), headers=["", "A", "B"], tablefmt="simple", disable_numparse=True)]
    return "\n".join(parts) + "\n"


def render_compare_md(c: Comparison) -> str:
    head, rows = _rows(c)
    lines = _headline(c)
    settings = _settings_block(c, "github")
    parts = ["# throughput comparison", "", f"**{lines[0]}**", "", "## What differs", "", settings[-1], ""]
    parts += ["## Phases", ""] + [f"- {x}" for x in lines[1:]] + [""]
    parts += [tabulate(rows, headers=head, tablefmt="github", disable_numparse=True), ""]
    parts += ["## Throughput", "", tabulate(_rate_rows(c), headers=["", "A", "B"], tablefmt="github",
                                            disable_numparse=True), ""]
    return "\n".join(parts)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def render_compare_json(c: Comparison) -> str:
    data = asdict(c)
    data["schema"] = "throughput.comparison"
    data["schema_version"] = 1
    data["moved"] = [p.phase for p in c.moved]
    return json.dumps(_finite(data), indent=2) + "\n"


COMPARE_RENDERERS: dict[str, Callable[[Comparison], str]] = {
    "table": render_compare_table, "md": render_compare_md, "json": render_compare_json,
}
