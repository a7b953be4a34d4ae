"""Lay torch.profiler's own trace (``torch_trace.json``, with CUDA kernels and every operator) over
the phase trace, on one time base, in one Trace Event Format file that Perfetto opens.

torch.profiler writes ``ts`` relative to ``baseTimeNanoseconds`` on its own clock. The window's marker
(a ``record_function`` range around a reading of the run's clock, named in the session's ``window``
event) is found in both: torch's events are shifted so that the marker's midpoint lands on that
reading's epoch time. Without the marker, ``baseTimeNanoseconds`` alone places them (torch maps its
clock to the epoch itself; the two mappings may differ by a few hundred microseconds).
torch's process ids move up by ``TORCH_PID_OFFSET`` so that its GPU tracks (pid = device index) do
not land on the rank tracks (pid = rank).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from throughput.report.trace import build_trace, epoch_us
from throughput.session.session import Session

TORCH_PID_OFFSET = 1_000_000_000
TORCH_TRACE_NAME = "torch_trace.json"   # written by the capture's operator window into the report folder


def torch_shift_us(torch_trace: Mapping[str, Any], sync_epoch_us: float | None, marker: str | None) -> float:
    """Microseconds to add to torch's ``ts`` to put them on the epoch time base of the phase trace."""
    base_us = float(torch_trace.get("baseTimeNanoseconds", 0)) / 1e3
    if sync_epoch_us is None or marker is None:
        return base_us
    for e in torch_trace.get("traceEvents", []):
        if e.get("name") == marker and e.get("ph") == "X":
            return sync_epoch_us - (float(e["ts"]) + float(e.get("dur", 0)) / 2)
    return base_us


def _moved(event: Mapping[str, Any], shift_us: float) -> dict[str, Any]:
    out = dict(event)
    if "ts" in out:
        out["ts"] = float(out["ts"]) + shift_us
    if isinstance(out.get("pid"), int):
        out["pid"] = out["pid"] + TORCH_PID_OFFSET
    return out


def merge_torch_trace(session: Session, torch_trace: Mapping[str, Any]) -> dict[str, Any]:
    """The session's phase trace plus every event of ``torch_trace``, shifted onto its time base."""
    window = next((e.detail for e in session.events if e.kind == "window"), {})
    sync_s, marker = window.get("sync_s"), window.get("sync_marker")
    sync_us = float(epoch_us(session, float(sync_s))) if sync_s is not None else None
    shift = torch_shift_us(torch_trace, sync_us, str(marker) if marker is not None else None)
    merged = build_trace([session])
    merged["traceEvents"] += [_moved(e, shift) for e in torch_trace.get("traceEvents", [])]
    return merged


def write_merged_trace(session: Session, torch_trace_path: str | Path, out_path: str | Path) -> Path:
    torch_trace = json.loads(Path(torch_trace_path).read_text())
    target = Path(out_path)
    target.write_text(json.dumps(merge_torch_trace(session, torch_trace), separators=(",", ":")))
    return target
