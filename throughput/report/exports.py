"""``steps.jsonl``: one JSON object per line and per kept step, in every report folder (TensorBoard
gets the same rows through ``cli/tensorboard_out.py``, which needs torch).

Written after the run from the session's kept steps, so it adds nothing to the training loop; its
size follows the number of steps the session keeps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from throughput.analysis.step_rows import step_rows
from throughput.session.io import atomic_write_text
from throughput.session.session import Session



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
