"""What every compat row script shares: its result lines and its marks.

A row script prints, on rank 0 only, lines the harness compares between the plain and the profiled
run (``updates=``, ``final_loss=``, ``params_sha256=``): they must match to the last digit. Timings
never go to stdout (they differ between runs); they go to the marks file named by ``COMPAT_MARKS``,
with one entry per interval of the framework's own work the harness locates in the profile's spans
(``perf_counter`` readings, the profiler's clock), and notes: details compared but not judged. Without
``COMPAT_MARKS`` nothing is written, so a row runs as a plain training script too.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

import torch

_MARKS: list[dict[str, Any]] = []
_NOTES: dict[str, Any] = {}
_UPDATES_S: list[float] = []   # perf_counter at each optimizer update (the run's steps, for the overhead)


def note(key: str, value: Any) -> None:
    """Something the harness compares between the two runs and reports when it differs, without
    failing the row (details whose equality is no part of the contract, e.g. dynamo's wording)."""
    _NOTES[key] = value


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


@contextmanager
def interval(label: str) -> Iterator[None]:
    """Record the wall interval of the block under ``label`` (written at exit)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _MARKS.append({"label": label, "start_s": t0, "end_s": time.perf_counter()})


def open_interval() -> float:
    """Start an interval whose end a framework callback sees (pass the result to ``close_interval``)."""
    return time.perf_counter()


def close_interval(label: str, start_s: float) -> None:
    _MARKS.append({"label": label, "start_s": start_s, "end_s": time.perf_counter()})


def mark_calls(owner: Any, name: str, label: str) -> None:
    """Record every call of ``owner.name`` (a framework method) as an interval named ``label``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        with interval(label):
            return original(*args, **kwargs)

    setattr(owner, name, timed)


class UpdateCounter:
    """Counts real updates of a torch optimizer (its own step post-hook: skipped steps never fire it)."""

    def __init__(self) -> None:
        self.count = 0

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.register_step_post_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        self.count += 1
        _UPDATES_S.append(time.perf_counter())


def params_sha256(module: torch.nn.Module) -> str:
    """A digest of every parameter's bytes: equal only if training did exactly the same math."""
    h = hashlib.sha256()
    for name, p in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def report(*, updates: int, final_loss: float, digest: str, **extra: Any) -> None:
    """Print the lines the harness compares (rank 0 only). ``repr`` keeps every digit of the float."""
    if rank() != 0:
        return
    print(f"updates={updates}")
    print(f"final_loss={final_loss!r}")
    print(f"params_sha256={digest}")
    for key, value in sorted(extra.items()):
        print(f"{key}={value}")


def _write_marks() -> None:
    path = os.environ.get("COMPAT_MARKS")
    if not path:
        return
    path = path.replace("{rank}", str(rank()))
    with open(path, "w") as f:
        json.dump({"pid": os.getpid(), "marks": _MARKS, "notes": _NOTES, "updates_s": _UPDATES_S}, f, default=str)


atexit.register(_write_marks)


def seed_all(seed: int = 0) -> None:
    """Seed torch and Python's random, so that both runs see the same data and initial weights."""
    import random
    random.seed(seed)
    torch.manual_seed(seed)
