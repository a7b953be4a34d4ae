"""Renderers: they format a Summary and do no arithmetic."""

from typing import Callable

from throughput.analysis.summary import Summary
from throughput.report.console import render_table
from throughput.report.jsonfmt import render_json, summary_to_dict
from throughput.report.markdown import render_markdown

RENDERERS: dict[str, Callable[[Summary], str]] = {
    "table": render_table,
    "md": render_markdown,
    "json": render_json,
}

__all__ = ["RENDERERS", "render_json", "render_markdown", "render_table", "summary_to_dict"]
