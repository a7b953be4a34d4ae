"""``--tensorboard DIR``: the rows of steps.jsonl as TensorBoard scalars, written with
``torch.utils.tensorboard`` after the run (optional extra ``throughput[tensorboard]``)."""

from __future__ import annotations

from pathlib import Path

from throughput.analysis.step_rows import scalars, step_rows
from throughput.session.session import Session

TENSORBOARD_HINT = "--tensorboard needs TensorBoard: pip install 'throughput[tensorboard]'"


def write_tensorboard(session: Session, log_dir: str | Path) -> Path:
    """Write every kept step's scalars with ``SummaryWriter`` (global step = the step index, wall time =
    when the step ended). Raises ImportError with the install hint when TensorBoard is missing."""
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
