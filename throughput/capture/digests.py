"""Sample digests of the first training batches: how the advisor tells whether loader workers split a
stream or each yield all of it (``throughput.advisor.stream_check``).

Off unless ``THROUGHPUT_BATCH_DIGESTS=N`` is in the environment (the advisor sets it for the one probe
that checks; a user's run never pays for it). Then the first N training batches are hashed, one
digest per sample (row ``i`` of every tensor in the batch), and one ``context`` event records how many
samples were seen, how many were distinct, and a digest of the sorted set, so two runs can be compared
without keeping the samples. Bounded: N batches, then nothing.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable

DIGESTS_ENV = "THROUGHPUT_BATCH_DIGESTS"


def digests_wanted() -> int:
    """N from the environment (0: off; a bad value is off too, never an error in the user's run)."""
    try:
        return max(0, int(os.environ.get(DIGESTS_ENV, "0")))
    except ValueError:
        return 0


def sample_digests(batch: Any) -> list[str]:
    """One short hex digest per sample: the bytes of row ``i`` of every tensor in the batch (found in
    tuples, lists and dicts, in order). Empty when the batch holds no tensor with a first dimension."""
    tensors: list[Any] = []
    _collect(batch, tensors)
    rows = [t for t in tensors if getattr(t, "dim", lambda: 0)() >= 1]
    if not rows:
        return []
    n = min(int(t.shape[0]) for t in rows)
    flat = [t.detach().cpu().contiguous().reshape(t.shape[0], -1) for t in rows]
    out = []
    for i in range(n):
        h = hashlib.blake2b(digest_size=8)
        for t in flat:
            h.update(t[i].numpy().tobytes() if t.dtype.is_floating_point is False or t.dtype.itemsize != 2
                     else t[i].view(dtype=_int16()).numpy().tobytes())
        out.append(h.hexdigest())
    return out


def _int16() -> Any:
    import torch
    return torch.int16


def _collect(obj: Any, out: list[Any]) -> None:
    if hasattr(obj, "detach") and hasattr(obj, "shape"):
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _collect(v, out)


class DigestRecorder:
    """Hashes the first ``limit`` training batches, then reports once through ``emit(**detail)``."""

    def __init__(self, limit: int, emit: Callable[..., None]) -> None:
        self.limit, self._emit = limit, emit
        self._batches = 0
        self._samples: list[str] = []

    @property
    def done(self) -> bool:
        return self._batches >= self.limit

    def add(self, batch: Any) -> None:
        if self.done:
            return
        self._batches += 1
        self._samples += sample_digests(batch)
        if self.done:
            self.flush()

    def flush(self) -> None:
        """Report what was seen (also when the run ends before ``limit`` batches)."""
        if not self._batches or self._emit is None:
            return
        distinct = sorted(set(self._samples))
        self._emit(digest_batches=self._batches, digest_samples=len(self._samples),
                   digest_distinct=len(distinct),
                   digest_set=hashlib.blake2b("".join(distinct).encode(), digest_size=8).hexdigest())
        self._emit = None  # type: ignore[assignment]  # reported once
