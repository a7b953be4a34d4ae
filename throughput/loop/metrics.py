"""Per-step metrics to ``metrics.jsonl`` and a progress display (a bar on a terminal, lines otherwise).

Each line is one JSON object with ``kind`` = ``train`` | ``eval`` | ``event``. Train lines carry
``step`` (1-based count of updates done), ``loss``, ``lr``, ``grad_norm``, ``clipped``, ``tokens``,
``samples``, ``tokens_per_s`` (null where tokens are not known), ``samples_per_s``, ``train_s`` (the
step without evaluation and checkpointing, which the rates use), ``step_s``, ``phase_s`` and memory. On resume the file is cut back to the checkpoint's
step, so a killed-and-resumed run leaves the same log as an uninterrupted one (timings aside).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Mapping, TextIO


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete JSON lines of a metrics file (a torn last line from a kill is ignored)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only records at or before ``step`` (atomically rewritten; a missing file stays missing)."""
    if not path.is_file():
        return
    kept = [r for r in read_metrics(path) if int(r.get("step", 0)) <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    os.replace(tmp, path)


class MetricsWriter:
    """Appends JSON lines, flushed per line (not fsynced: the checkpoint is the durable record)."""

    def __init__(self, path: Path | None) -> None:
        self._file: TextIO | None = open(path, "a") if path is not None else None

    def write(self, record: Mapping[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(_finite(record)) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Progress:
    """A one-line bar redrawn in place on a TTY; plain lines every ``every`` steps otherwise."""

    def __init__(self, total: int, every: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total, self.every, self.enabled = total, every, enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, step: int, loss: float, lr: float, tokens_per_s: float | None,
               samples_per_s: float | None = None) -> None:
        if not self.enabled:
            return
        rate = f" {tokens_per_s:,.0f} tok/s" if tokens_per_s else (
            f" {samples_per_s:,.1f} samples/s" if samples_per_s else "")
        text = f"step {step}/{self.total} loss {loss:.4f} lr {lr:.3g}{rate}"
        if self.tty:
            width = 24
            done = int(width * step / max(1, self.total))
            self.stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {text}\033[K")
            self.stream.flush()
        elif step % self.every == 0 or step == self.total:
            self.stream.write(text + "\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _finite(record: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has no NaN/inf: write them as strings so the file stays standard JSON."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = str(v)
        elif isinstance(v, Mapping):
            out[k] = _finite(v)
        else:
            out[k] = v
    return out
