"""One flat row per kept step, for steps.jsonl and TensorBoard. Pure.

A row holds the step's index, its wall time, exclusive seconds per phase (``other`` included, so
they sum to the wall time), samples, tokens, their rates, the loss, memory where it was read, when
the step ended (epoch seconds), and whether it counts in the steady-state figures.
"""

from __future__ import annotations

import math
from typing import Any

from throughput.analysis.breakdown import phase_times
from throughput.analysis.memory import step_memory
from throughput.analysis.summary import steady_steps
from throughput.session.session import Session


def step_rows(session: Session) -> list[dict[str, Any]]:
    """Rows in step order; ``memory`` is None where nothing was read for that step."""
    info = session.info
    measured = {s.index for s in steady_steps(session)[1]}
    memory = step_memory(session)
    rows = []
    for s in session.steps:
        wall = s.duration_s
        mem: dict[str, int] | None = dict(memory[s.index]) if s.index in memory else None
        if s.peak_memory_bytes is not None:
            mem = {**(mem or {}), "peak_allocated_bytes": s.peak_memory_bytes}
        rows.append({
            "index": s.index,
            "end_unix_s": info.started_unix_s + (s.end_s - info.origin_s),
            "wall_s": wall,
            "phases": phase_times(s),
            "device_phases": dict(s.device_phase_s) if s.device_phase_s is not None else None,
            "samples": s.samples,
            "tokens": s.tokens,
            "samples_per_s": s.samples / wall if s.samples is not None and wall > 0 else None,
            "tokens_per_s": s.tokens / wall if s.tokens is not None and wall > 0 else None,
            "loss": s.loss,
            "memory": mem,
            "measured": s.index in measured,
        })
    return rows


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of one row (tag -> value): wall time, seconds per phase, rates, loss and
    memory; absent (and non-finite) values are left out."""
    out = {"step/wall_s": row["wall_s"]}
    out.update({f"phase/{name}_s": value for name, value in row["phases"].items()})
    for key in ("samples_per_s", "tokens_per_s"):
        if row[key] is not None:
            out[f"throughput/{key}"] = row[key]
    if row["loss"] is not None and math.isfinite(row["loss"]):
        out["loss"] = row["loss"]
    for name, value in (row["memory"] or {}).items():
        out[f"memory/{name}"] = value
    return {tag: float(v) for tag, v in out.items()}
