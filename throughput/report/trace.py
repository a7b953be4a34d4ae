"""A Chrome/Perfetto trace (JSON "Trace Event Format") of the phase timeline, kept small.

One process track per rank (pid = rank): each step and each phase span is a complete event
(``"ph": "X"``), telemetry readings are counters (``"ph": "C"``). Times are integer microseconds
from the earliest rank's start, keys are the format's short ones and events carry no ``args`` except
counters, so 5000 steps of 6 phases stay near 2 MB. Open it at https://ui.perfetto.dev.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from throughput.session.io import atomic_write_text
from throughput.session.session import Session


def _track_events(session: Session, offset_s: float) -> list[dict[str, Any]]:
    rank = session.info.rank
    origin = session.info.origin_s

    def us(t: float) -> int:
        return round((t - origin + offset_s) * 1e6)

    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": rank, "args": {"name": f"rank {rank} ({session.info.hostname})"}},
        {"ph": "M", "name": "process_sort_index", "pid": rank, "args": {"sort_index": rank}},
    ]
    for step in session.steps:
        events.append({"ph": "X", "name": f"step {step.index}", "pid": rank, "tid": 0, "ts": us(step.start_s),
                       "dur": max(0, us(step.end_s) - us(step.start_s))})
    for span in session.spans:
        events.append({"ph": "X", "name": span.phase, "pid": rank, "tid": 0, "ts": us(span.start_s),
                       "dur": max(0, us(span.end_s) - us(span.start_s))})
    for sample in session.telemetry:
        events.append({"ph": "C", "name": f"{sample.source} {sample.metric}", "pid": rank, "ts": us(sample.time_s),
                       "args": {"v": round(sample.value, 3)}})
    return events


def build_trace(sessions: Sequence[Session]) -> dict[str, Any]:
    """The trace of one or more ranks; ranks are aligned on their wall-clock start times."""
    if not sessions:
        return {"traceEvents": [], "displayTimeUnit": "ms"}
    first = min(s.info.started_unix_s for s in sessions)
    events: list[dict[str, Any]] = []
    for s in sorted(sessions, key=lambda s: s.info.rank):
        events += _track_events(s, s.info.started_unix_s - first)
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def write_trace(sessions: Sequence[Session], path: str | Path) -> Path:
    """Write the trace JSON compactly (no spaces). Returns the path."""
    return atomic_write_text(path, json.dumps(build_trace(sessions), separators=(",", ":")))
