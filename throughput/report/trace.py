"""A Chrome/Perfetto trace (JSON "Trace Event Format") of the phase timeline, kept small.

One process track per rank (pid = rank) with named threads: tid 0 holds each step and each phase span
as a complete event (``"ph": "X"``), tid 1 the operators of the ``--ops`` window (under the phases they
ran in), and telemetry readings are counters (``"ph": "C"``). Times are integer microseconds since the
Unix epoch (each rank's clock mapped through its own wall-clock start), so ranks line up and the trace
can be laid over a torch.profiler trace (``report/trace_merge.py``). Step events carry their step
index, samples, tokens and loss as ``args``; phase spans carry none, so 5000 steps of 6 phases stay
near 3 MB. Open it at https://ui.perfetto.dev.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from throughput.session.io import atomic_write_text
from throughput.session.session import Session

STEPS_TID = 0
OPERATORS_TID = 1


def epoch_us(session: Session, t_s: float) -> int:
    """Microseconds since the Unix epoch of reading ``t_s`` of the session's clock."""
    return round((session.info.started_unix_s + (t_s - session.info.origin_s)) * 1e6)


def _metadata(session: Session) -> list[dict[str, Any]]:
    rank = session.info.rank
    names = ((STEPS_TID, "steps and phases"), (OPERATORS_TID, "operators (torch.profiler window)"))
    return [
        {"ph": "M", "name": "process_name", "pid": rank, "args": {"name": f"rank {rank} ({session.info.hostname})"}},
        {"ph": "M", "name": "process_sort_index", "pid": rank, "args": {"sort_index": rank}},
    ] + [{"ph": "M", "name": "thread_name", "pid": rank, "tid": tid, "args": {"name": name}} for tid, name in names
         if tid == STEPS_TID or any(e.kind == "op_span" for e in session.events)]


def _step_args(step: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"step": step.index}
    for key in ("samples", "tokens", "loss"):
        value = getattr(step, key)
        if value is not None and value == value:   # NaN loss is left out (not JSON)
            args[key] = value
    return args


def _track_events(session: Session) -> list[dict[str, Any]]:
    rank = session.info.rank

    def us(t: float) -> int:
        return epoch_us(session, t)

    events = _metadata(session)
    for step in session.steps:
        events.append({"ph": "X", "name": f"step {step.index}", "pid": rank, "tid": STEPS_TID, "ts": us(step.start_s),
                       "dur": max(0, us(step.end_s) - us(step.start_s)), "args": _step_args(step)})
    for span in session.spans:
        events.append({"ph": "X", "name": span.phase, "pid": rank, "tid": STEPS_TID, "ts": us(span.start_s),
                       "dur": max(0, us(span.end_s) - us(span.start_s))})
    for e in session.events:
        if e.kind == "op_span":
            a, b = float(e.detail["start_s"]), float(e.detail["end_s"])
            events.append({"ph": "X", "name": str(e.detail["name"]), "cat": "operator", "pid": rank,
                           "tid": OPERATORS_TID, "ts": us(a), "dur": max(0, us(b) - us(a)),
                           "args": {"phase": e.detail["phase"]}})
    for sample in session.telemetry:
        events.append({"ph": "C", "name": f"{sample.source} {sample.metric}", "pid": rank, "ts": us(sample.time_s),
                       "args": {"v": round(sample.value, 3)}})
    return events


def build_trace(sessions: Sequence[Session]) -> dict[str, Any]:
    """The trace of one or more ranks, on the epoch time base."""
    events: list[dict[str, Any]] = []
    for s in sorted(sessions, key=lambda s: s.info.rank):
        events += _track_events(s)
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def write_trace(sessions: Sequence[Session], path: str | Path) -> Path:
    """Write the trace JSON compactly (no spaces). Returns the path."""
    return atomic_write_text(path, json.dumps(build_trace(sessions), separators=(",", ":")))
