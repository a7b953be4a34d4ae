"""Plain-text report for terminals."""

from __future__ import annotations

from tabulate import tabulate

from throughput.analysis.summary import Summary
from throughput.report.tables import finding_lines, header_lines, phase_rows, rate_rows, verdict_lines


def render_table(summary: Summary) -> str:
    parts = header_lines(summary)
    if summary.phases:
        head, rows = phase_rows(summary)
        parts += ["", tabulate(rows, headers=head, tablefmt="simple", disable_numparse=True)]
    parts += ["", tabulate(rate_rows(summary), tablefmt="plain", disable_numparse=True), ""]
    parts += verdict_lines(summary)
    if summary.findings:
        parts += ["", "findings:"] + finding_lines(summary)
    parts += [f"note: {n}" for n in summary.notes]
    return "\n".join(parts) + "\n"
