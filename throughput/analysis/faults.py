"""Page faults and kernel CPU time of the training process over the steady state (pure: no I/O).

glibc's malloc returns large freed blocks to the kernel: blocks above the mmap threshold are
unmapped on ``free``, and free memory at the top of the heap above the trim threshold is trimmed.
A training step frees and re-allocates the same large tensors every step, so each step the kernel
hands the pages back again, one minor fault (and one zeroed 4 KiB page) at a time. Measured on a
2-core CPU machine (Linear-ReLU-Linear-ReLU-Linear, width 2016, batch 64, AdamW, one thread): 19,500 minor faults
a step, 38% of the process's CPU time in the kernel, 75.6 ms a step; with
``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824`` 128 faults, 1%, 43.1 ms.
At width 512: 307 faults a step and 7% kernel time, a cost not worth a change.

The finding's thresholds (both must hold):
- ``FAULTS_PER_STEP_MIN`` = 1000 faults a step, i.e. 4 MiB of 4 KiB pages touched afresh each step.
  A fault cost about 1.7 us on that machine ((75.6 - 43.1) ms / 19,400 faults), so fewer than
  1000 cost at most a few ms a step whatever the step time;
- ``SYSTEM_SHARE_MIN`` = 10% of the process's CPU time (user + system, all threads) spent in the
  kernel: the faults are then a real share of the work, not noise (a well-behaved training process
  spends 0-7% there; the faulting one above spent 38%). A share of CPU time rather than of wall
  time, so the threshold does not depend on the number of threads.

Inputs are the host sampler's cumulative counters of the main process (``COUNTER_METRICS``); the
steady-state window is from the first measured step's start to the last one's end. Only samples
inside it are used, so a run needs two samples (one sampling interval, 0.5 s by default) inside
its measured steps, otherwise nothing is computed (None).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

from throughput.session.records import StepRecord, TelemetrySample
from throughput.thresholds import FAULTS_PER_STEP_MIN, SYSTEM_SHARE_MIN

MIN_THRESHOLD_BYTES = 1 << 30      # the smallest malloc threshold the finding recommends (1 GiB)
_COUNTERS = ("minor_faults_total", "user_cpu_total_s", "system_cpu_total_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class PageFaults:
    """The main process's minor faults and CPU time between two samples inside the steady state."""

    window_s: float                   # seconds between the first and the last sample used
    minor_faults: float               # faults in that window
    faults_per_s: float
    faults_per_step: float            # faults_per_s x mean measured step time
    user_cpu_s: float
    system_cpu_s: float
    system_share: float | None        # system / (user + system) CPU time, 0..1; None when no CPU time
    peak_rss_bytes: float | None      # largest RSS sample of the main process over the whole run

    def __post_init__(self) -> None:
        if self.window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {self.window_s}")


def page_faults(telemetry: Sequence[TelemetrySample], measured: Sequence[StepRecord]) -> PageFaults | None:
    """Steady-state faults and kernel share of the main process; None without measured steps or without
    two counter samples inside them (sampler off, not Linux, run shorter than a sampling interval)."""
    if not measured:
        return None
    mean_step_s = math.fsum(s.duration_s for s in measured) / len(measured)
    return page_faults_in(telemetry, measured[0].start_s, measured[-1].end_s, mean_step_s)


def page_faults_in(telemetry: Sequence[TelemetrySample], start_s: float, end_s: float, mean_step_s: float,
                   peak_rss_bytes: float | None = None) -> PageFaults | None:
    """``page_faults`` over the window ``start_s``..``end_s`` of steps lasting ``mean_step_s`` on average;
    the peak RSS is the largest ``rss_bytes`` sample of the main process unless given."""
    by_time: dict[float, dict[str, float]] = defaultdict(dict)
    for t in telemetry:
        if t.source == "main" and t.metric in _COUNTERS and start_s <= t.time_s <= end_s:
            by_time[t.time_s][t.metric] = t.value
    rows = [(time_s, v) for time_s, v in sorted(by_time.items()) if len(v) == len(_COUNTERS)]
    if len(rows) < 2 or rows[-1][0] <= rows[0][0]:
        return None
    (t0, first), (t1, last) = rows[0], rows[-1]
    faults, user, system = (last[m] - first[m] for m in _COUNTERS)
    if peak_rss_bytes is None:
        rss = [t.value for t in telemetry if t.source == "main" and t.metric == "rss_bytes"]
        peak_rss_bytes = max(rss) if rss else None
    cpu = user + system
    return PageFaults(window_s=t1 - t0, minor_faults=faults, faults_per_s=faults / (t1 - t0),
                      faults_per_step=faults / (t1 - t0) * mean_step_s, user_cpu_s=user, system_cpu_s=system,
                      system_share=system / cpu if cpu > 0 else None, peak_rss_bytes=peak_rss_bytes)


def malloc_threshold_bytes(peak_rss_bytes: float | None) -> int:
    """A glibc malloc threshold above any block the process can hold: the peak RSS rounded up to a
    power of two, at least ``MIN_THRESHOLD_BYTES``."""
    if peak_rss_bytes is None or peak_rss_bytes <= MIN_THRESHOLD_BYTES:
        return MIN_THRESHOLD_BYTES
    return 1 << math.ceil(math.log2(peak_rss_bytes))


def allocator_env(peak_rss_bytes: float | None) -> dict[str, str]:
    """The environment that keeps freed memory in the process (glibc malloc tunables)."""
    n = str(malloc_threshold_bytes(peak_rss_bytes))
    return {"MALLOC_MMAP_THRESHOLD_": n, "MALLOC_TRIM_THRESHOLD_": n}


def faults_are_costly(p: PageFaults) -> bool:
    """Both thresholds of the module docstring hold."""
    return p.faults_per_step >= FAULTS_PER_STEP_MIN and p.system_share is not None \
        and p.system_share >= SYSTEM_SHARE_MIN
