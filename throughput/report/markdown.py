"""Markdown report (readable on GitHub)."""

from __future__ import annotations

from tabulate import tabulate

from throughput.analysis.summary import Summary
from throughput.report.tables import finding_lines, header_lines, phase_rows, rate_rows, verdict_lines
from throughput.report.views_md import render_memory_md, render_operators_md


def render_markdown(summary: Summary, title: str = "Training step profile") -> str:
    parts = [f"# {title}", ""]
    if summary.partial:
        parts += [f"> **Partial run**: ended with `{summary.end}`"
                  + (f" ({summary.end_detail})" if summary.end_detail else "")
                  + ". Figures cover the steps completed before the end.", ""]
    parts += [f"- {line}" for line in header_lines(summary)] + [""]
    if summary.phases:
        head, rows = phase_rows(summary)
        parts += ["## Where the step time goes", "", tabulate(rows, headers=head, tablefmt="github",
                                                              disable_numparse=True), ""]
    parts += ["## Throughput", "", tabulate(rate_rows(summary), headers=["metric", "value"], tablefmt="github",
                                            disable_numparse=True), ""]
    v = verdict_lines(summary)
    parts += ["## Verdict", "", f"**{v[0]}**", ""] + [f"- {line.strip()}" for line in v[1:]] + [""]
    if summary.findings:
        parts += ["## Findings", ""]
        for line in finding_lines(summary):
            parts.append(f"  - {line.strip()}" if line.startswith("  ") else f"- **{line}**")
        parts.append("")
    parts += [section for section in (render_operators_md(summary.operators), render_memory_md(summary.memory))
              if section]
    if summary.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in summary.notes] + [""]
    return "\n".join(parts)
