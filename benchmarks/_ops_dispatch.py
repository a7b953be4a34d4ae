"""Dispatch cost of a small operator (``torch.add`` on 8x8 tensors, one thread), in CPU time per call,
before and after a torch.profiler window run the way ``--ops`` runs it (``with`` ``off``: no window).

    python benchmarks/_ops_dispatch.py ops|off

Prints one JSON object: ``before_us`` and ``after_us`` (medians of 30 blocks of 2000 calls each). A
profiler that left a callback behind would show as a higher ``after_us`` than ``before_us``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import torch


def per_call_us(a: torch.Tensor, b: torch.Tensor) -> float:
    blocks = []
    for _ in range(30):
        t0 = time.thread_time()
        for _ in range(2000):
            torch.add(a, b)
        blocks.append((time.thread_time() - t0) / 2000 * 1e6)
    return statistics.median(blocks)


def window(a: torch.Tensor, b: torch.Tensor) -> None:
    from torch.profiler import ProfilerActivity, profile, schedule
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True,
                   schedule=schedule(wait=0, warmup=1, active=5, repeat=1), on_trace_ready=lambda p: None)
    prof.start()
    for _ in range(7):
        torch.add(a, b)
        prof.step()
    prof.stop()


def main() -> None:
    torch.set_num_threads(1)
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    per_call_us(a, b)                                  # warm the dispatcher and the caches
    before = per_call_us(a, b)
    if sys.argv[1] == "ops":
        window(a, b)
    print(json.dumps({"mode": sys.argv[1], "before_us": before, "after_us": per_call_us(a, b)}))


if __name__ == "__main__":
    main()
