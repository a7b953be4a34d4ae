"""A report folder: session.json, summary.json, report.md (with telemetry and py-spy sections when
there are any), trace.json (Perfetto timeline), steps.jsonl (one line per kept step), PNG plots (when
matplotlib is there) and, after an operator window, trace_ops.json (torch.profiler's trace laid over
the phases)."""

from __future__ import annotations

import json
from pathlib import Path

from throughput.analysis.memory import memory_timeline
from throughput.analysis.series import step_series
from throughput.analysis.summary import Summary, summarize
from throughput.analysis.telemetry import telemetry_summary
from throughput.report.jsonfmt import summary_to_dict
from throughput.report.markdown import render_markdown
from throughput.report.plot_job import PlotJob, PlotResult
from throughput.report.plot_worker import PlotProcess
from throughput.report.telemetry import render_telemetry_md
from throughput.folders import STEPS_NAME
from throughput.report.exports import write_steps_jsonl
from throughput.report.trace import write_trace
from throughput.report.trace_merge import TORCH_TRACE_NAME, write_merged_trace
from throughput.session.io import atomic_write_text, save_session
from throughput.session.session import Session


def plot_job(session: Session, out: Path) -> PlotJob | None:
    """What the plots of this run need, or None when there is nothing to draw."""
    if not session.steps:
        return None
    return PlotJob(series=step_series(session), memory=memory_timeline(session), out=out)


def write_report(session: Session, out_dir: str | Path, summary: Summary | None = None,
                 plots: bool = True) -> Path:
    """Write the standard files into ``out_dir`` (created). Returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summary or summarize(session)
    # session.json first: with it everything else can be rendered again (`throughput report`). Each
    # file is written whole (temp file + rename), so an interrupted report leaves no half files.
    job = plot_job(session, out) if plots else None
    # The plots draw in a child process meanwhile (a second core): see throughput.report.plot_worker.
    drawing = PlotProcess(job).start() if job is not None else None
    try:
        save_session(session, out / "session.json")
        atomic_write_text(out / "summary.json", json.dumps(summary_to_dict(summary), indent=2) + "\n")
        write_trace([session], out / "trace.json")
        write_steps_jsonl(session, out / STEPS_NAME)
        _merge_torch_trace(session, out)
        result = drawing.finish() if drawing is not None else PlotResult(files=())
    except BaseException:   # an aborted report (second Ctrl-C) or a write error: no child left drawing
        if drawing is not None:
            drawing.kill()
        raise
    images, missing = list(result.files), result.missing
    markdown = render_markdown(summary)
    extra = render_telemetry_md(telemetry_summary(session))
    if extra:
        markdown += "\n" + extra
    if images:
        markdown += "\n## Plots\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in images) + "\n"
    elif missing:
        markdown += f"\n## Plots\n\nNot drawn: {missing}.\n"
    atomic_write_text(out / "report.md", markdown)
    return out


def _merge_torch_trace(session: Session, out: Path) -> None:
    """With an operator window, ``trace_ops.json``: the phase trace with torch.profiler's own laid over it."""
    torch_trace = next((Path(a) for a in session.artifacts if Path(a).name == TORCH_TRACE_NAME), None)
    if torch_trace is not None and torch_trace.is_file():
        write_merged_trace(session, torch_trace, out / "trace_ops.json")
