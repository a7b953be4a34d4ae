"""Probes: short, bounded, real runs of a training configuration (the torch side of the advisor).

A ``ProbeTarget`` runs a configuration for a few optimizer steps and reports what it measured. Two
targets exist: ``WorkloadTarget`` (in-process, ``throughput.advisor.workload``) and ``ScriptTarget``
(an unmodified script re-run under ``throughput profile --set ...``, ``throughput.advisor.script``).
A probe never raises for running out of memory: it returns ``oom=True`` and the message.

Peak memory is the memory the probe added at its peak, in bytes:
- CUDA: ``torch.cuda.max_memory_reserved()`` after ``reset_peak_memory_stats()`` (reserved, not just
  allocated, because the caching allocator's fragmentation is what runs out first);
- CPU: the process's resident-set high-water mark (``VmHWM``) minus its resident set before the probe.
  The mark is reset through ``/proc/self/clear_refs`` (Linux >= 4.0) after ``malloc_trim`` returned
  freed heap to the OS, so it measures real pages touched by this probe (activations, parameters,
  gradients, optimizer state, batches), not an estimate. Loader worker processes are not included.
  glibc's mmap threshold is pinned at 128 KiB in the probing process (``pin_mmap_threshold``) so that
  freed tensors leave the resident set instead of lingering in the heap. File-backed pages first
  touched during the probe (library code, ``RssFile``) are subtracted: they are not the configuration's
  memory. On CPU each probe runs in a fresh child process (``throughput.advisor.isolate``), so the
  measurement starts from the same clean baseline whatever ran before.
"""

from __future__ import annotations

import ctypes
import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

Config = Mapping[str, object]
OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "memoryerror",
               "outofmemoryerror", "std::bad_alloc")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    """What one probe measured. Rates are per process over the measured (post-warm-up) steps."""

    samples_per_s: float | None = None
    tokens_per_s: float | None = None
    peak_memory_bytes: int | None = None
    losses: tuple[float, ...] = ()
    data_wait_share: float | None = None      # share of step time waiting for batches, 0..1
    oom: bool = False
    error: str | None = None                  # one line; set when the probe failed (OOM included)
    wall_s: float = 0.0                       # the probe's own wall time, set-up included
    steps: int = 0                            # measured steps

    @property
    def ok(self) -> bool:
        return self.error is None and self.samples_per_s is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Trial:
    """A configuration and what its probe measured (kept for evidence and for the benchmark)."""

    config: Mapping[str, object]
    result: ProbeResult
    purpose: str = ""
    extra: Mapping[str, float] = field(default_factory=dict)


class ProbeTarget(Protocol):
    """Something the advisor can run. ``supported`` names the config keys it can apply."""

    supported: frozenset[str]

    def run(self, config: Config, steps: int) -> ProbeResult: ...


def is_oom(exc: BaseException) -> bool:
    """True for the allocator failures of torch (CUDA and CPU) and Python."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__.lower()
    return "outofmemory" in name or any(m in str(exc).lower() for m in OOM_MARKERS)


def text_is_oom(text: str) -> bool:
    low = text.lower()
    return any(m in low for m in OOM_MARKERS)


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[0] if lines else text)[:limit]


# -- CPU resident-set peak (Linux) ----------------------------------------------------------------------
def _status_kib(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


M_MMAP_THRESHOLD = -3            # glibc mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024


def pin_mmap_threshold() -> bool:
    """Make glibc serve every allocation >= 128 KiB with its own mmap, returned to the OS on free.

    glibc's default raises this threshold dynamically (up to 32 MiB) after big frees, after which freed
    tensors stay in the heap and the resident set stops tracking live memory. Pinning it (the same as
    ``MALLOC_MMAP_THRESHOLD_=131072``) makes the RSS peak the peak of live tensor pages. Probing
    processes only; returns False where glibc is not available.
    """
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def reset_rss_peak() -> int | None:
    """Return freed memory to the OS, reset VmHWM to the current RSS; the RSS in bytes (None: unsupported)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    rss = _status_kib("VmRSS")
    return rss * 1024 if rss is not None else None


def rss_peak_bytes() -> int | None:
    hwm = _status_kib("VmHWM")
    return hwm * 1024 if hwm is not None else None


class MemoryMeter:
    """Peak memory a block of code added: ``start()``, run, ``peak_bytes()``. See the module docstring."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._base: int | None = None
        self._file_base = 0

    def start(self) -> None:
        if self.device.startswith("cuda"):
            import torch
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self._base = int(torch.cuda.memory_reserved())
        else:
            pin_mmap_threshold()
            self._base = reset_rss_peak()
            self._file_base = _status_kib("RssFile") or 0

    def peak_bytes(self) -> int | None:
        if self._base is None:
            return None
        if self.device.startswith("cuda"):
            import torch
            return max(0, int(torch.cuda.max_memory_reserved()) - self._base)
        peak = rss_peak_bytes()
        # Pages of shared libraries first touched during the probe are resident too, but they are code,
        # read once and shared: not memory the configuration needs (in a fresh child they are ~170 MiB).
        file_growth = max(0, (_status_kib("RssFile") or 0) - self._file_base) * 1024
        return max(0, peak - self._base - file_growth) if peak is not None else None


def release_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch
        torch.cuda.empty_cache()


def describe_config(config: Config, keys: tuple[str, ...] | None = None) -> str:
    """A short, stable text for a configuration: ``micro_batch_size=32 amp=bf16``."""
    items: list[tuple[str, Any]] = sorted(config.items()) if keys is None else [
        (k, config[k]) for k in keys if k in config]
    return " ".join(f"{k}={v}" for k, v in items)
