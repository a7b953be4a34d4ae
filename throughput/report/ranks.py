"""The merged multi-rank report: per-rank table, spread, straggler, collective wait. Formatting only;
``write_ranks_report`` also writes the files of the merged report folder."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

from tabulate import tabulate

from throughput.analysis.ranks import RankSummary, summarize_ranks
from throughput.report.format import percent, rate, seconds
from throughput.report.trace import write_trace
from throughput.session.session import Session
from throughput.thresholds import STRAGGLER_MIN_SHARE

_SHOWN_PHASES = ("data", "h2d", "forward", "backward", "optimizer", "collective", "other")


def _table(r: RankSummary) -> tuple[list[str], list[list[str]]]:
    phases = [p for p in _SHOWN_PHASES if any(p in row.phase_share for row in r.ranks)]
    head = ["rank", "host", "step median", "step mean"] + [f"{p} share" for p in phases] + ["samples/s", "wait/step"]
    rows = []
    for row in r.ranks:
        rows.append([str(row.rank), row.hostname, seconds(row.step_median_s), seconds(row.step_mean_s)]
                    + [percent(row.phase_share.get(p, 0.0)) for p in phases]
                    + [rate(row.samples_per_s, "samples/s"), seconds(r.collective_wait_s.get(row.rank))])
    return head, rows


def _findings(r: RankSummary) -> list[str]:
    lines = [f"{len(r.ranks)} of {r.world_size} ranks; step time median {seconds(r.step_median_s)}, "
             f"spread across ranks {percent(r.spread)} ((max - min) / median of per-rank medians)"]
    if r.straggler is not None:
        s = r.straggler
        lines.append(f"straggler: rank {s.rank}, phase '{s.phase}': {seconds(s.median_s + s.excess_s)} per step "
                     f"vs the ranks' median {seconds(s.median_s)} (+{seconds(s.excess_s)})")
    else:
        lines.append("straggler: none (no rank loses 5% of a step in one phase versus the others)")
    if r.straggler is None or r.spread >= STRAGGLER_MIN_SHARE:
        lines.append(f"slowest rank by mean step time: rank {r.slowest_rank}")
    if r.collective_wait_s and max(r.collective_wait_s.values()) > 0:
        worst = max(r.collective_wait_s, key=lambda k: r.collective_wait_s[k])
        lines.append(f"collective wait (estimated): up to {seconds(r.collective_wait_s[worst])} per step on rank "
                     f"{worst}: backward/collective time above the rank with the least. Under DDP the gradient "
                     "all-reduce runs inside backward, so ranks that arrive early wait there for the straggler.")
    if r.samples_per_s is not None:
        lines.append(f"global throughput: {rate(r.samples_per_s, 'samples/s')} (sum over ranks)")
    return lines + [f"note: {n}" for n in r.notes]


def render_ranks_table(r: RankSummary) -> str:
    head, rows = _table(r)
    return "\n".join(_findings(r) + ["", tabulate(rows, headers=head, tablefmt="simple",
                                                   disable_numparse=True)]) + "\n"


def render_ranks_md(r: RankSummary) -> str:
    head, rows = _table(r)
    return "\n".join(["# throughput: multi-rank report", ""] + [f"- {x}" for x in _findings(r)]
                     + ["", "## Per rank", "", tabulate(rows, headers=head, tablefmt="github",
                                                        disable_numparse=True), ""])


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def render_ranks_json(r: RankSummary) -> str:
    return json.dumps(_finite({"schema": "throughput.ranks", "schema_version": 1, **asdict(r)}), indent=2) + "\n"


RANKS_RENDERERS: dict[str, Callable[[RankSummary], str]] = {
    "table": render_ranks_table, "md": render_ranks_md, "json": render_ranks_json,
}


def write_ranks_report(sessions: Sequence[Session], out_dir: str | Path) -> RankSummary:
    """Write ranks.md, ranks.json and trace.json (one track per rank) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize_ranks(sessions)
    (out / "ranks.md").write_text(render_ranks_md(summary))
    (out / "ranks.json").write_text(render_ranks_json(summary))
    write_trace(sessions, out / "trace.json")
    return summary
