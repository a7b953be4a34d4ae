"""Per-step exports that other tools read: ``steps.jsonl`` (every report folder) and TensorBoard
scalars (``--tensorboard DIR``; optional extra ``throughput[tensorboard]``).

Both are written after the run from the session's kept steps, so they add nothing to the training
loop; their size follows the number of steps the session keeps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from throughput.analysis.step_rows import step_rows
from throughput.session.io import atomic_write_text
from throughput.session.session import Session

STEPS_NAME = "steps.jsonl"
TENSORBOARD_HINT = "--tensorboard needs TensorBoard: pip install 'throughput[tensorboard]'"


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: a non-finite loss is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def write_steps_jsonl(session: Session, path: str | Path) -> Path:
    """One JSON object per line and per kept step (fields: ``analysis.step_rows``). Returns the path."""
    lines = [json.dumps(_finite(row), separators=(",", ":")) for row in step_rows(session)]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of one row (tag -> value); absent values are left out."""
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


def write_tensorboard(session: Session, log_dir: str | Path) -> Path:
    """Write every kept step's scalars with ``torch.utils.tensorboard.SummaryWriter`` (global step = the
    step index, wall time = when the step ended). Raises ImportError with the install hint."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError(TENSORBOARD_HINT) from e
    target = Path(log_dir)
    writer = SummaryWriter(log_dir=str(target))
    try:
        for row in step_rows(session):
            for tag, value in scalars(row).items():
                writer.add_scalar(tag, value, global_step=row["index"], walltime=row["end_unix_s"])
    finally:
        writer.close()
    return target
