"""A report folder: session.json, summary.json, report.md (with telemetry and py-spy sections when
there are any) and trace.json (Perfetto timeline)."""

from __future__ import annotations

import json
from pathlib import Path

from throughput.analysis.summary import Summary, summarize
from throughput.analysis.telemetry import telemetry_summary
from throughput.report.jsonfmt import summary_to_dict
from throughput.report.markdown import render_markdown
from throughput.report.telemetry import render_telemetry_md
from throughput.report.trace import write_trace
from throughput.session.io import save_session
from throughput.session.session import Session


def write_report(session: Session, out_dir: str | Path, summary: Summary | None = None) -> Path:
    """Write the standard files into ``out_dir`` (created). Returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summary or summarize(session)
    save_session(session, out / "session.json")
    (out / "summary.json").write_text(json.dumps(summary_to_dict(summary), indent=2) + "\n")
    extra = render_telemetry_md(telemetry_summary(session))
    (out / "report.md").write_text(render_markdown(summary) + ("\n" + extra if extra else ""))
    write_trace([session], out / "trace.json")
    return out
