"""Streaming rows of benchmarks/packing.py: ``OnlinePacker`` over whole length streams, four distributions,
a buffer sweep, and the same stream without the compiled loop (what ``throughput[fast]`` buys).

Planning docs/s counts ``extend()`` over the stream in batches of 10,000 lengths plus the final
``flush()`` (the rows do not depend on the batch size); the median of ``repeats`` runs, timed with
``time.perf_counter``. Utilization is over every row of the stream, the rows of the final flush included.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from throughput.packing import OnlinePacker, kernels

BUFFERS = (256, 512, 1024, 2048, 4096, 8192, 16384)
BATCH = 10_000


def stream_once(lengths: np.ndarray, row_len: int, buffer_size: int) -> tuple[float, Any, float]:
    """(wall seconds, stats, CPU seconds of this process: less inflated than wall time on a busy machine)."""
    packer = OnlinePacker(row_len, buffer_size=buffer_size)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(lengths), BATCH):
        packer.extend(lengths[i:i + BATCH])
    packer.flush()
    return time.perf_counter() - t0, packer.stats(), time.process_time() - c0


def stream_case(lengths: np.ndarray, row_len: int, buffer_size: int, repeats: int) -> dict[str, Any]:
    times, cpu, stats = [], [], None
    for _ in range(repeats):
        t, stats, c = stream_once(lengths, row_len, buffer_size)
        times.append(t)
        cpu.append(c)
    assert stats is not None
    s = statistics.median(times)
    return {"buffer": buffer_size, "utilization": stats.utilization, "rows": stats.rows,
            "rows_lower_bound": stats.rows_lower_bound, "seconds": s, "docs_per_s": len(lengths) / s,
            "cpu_docs_per_s": len(lengths) / statistics.median(cpu)}


def numpy_path_case(lengths: np.ndarray, row_len: int, buffer_size: int = 1024) -> dict[str, Any]:
    """The same packer with the compiled loop switched off (numpy + ``exact_bfd``): same rows, slower."""
    saved = kernels._COMPILED
    kernels._COMPILED = None
    try:
        t, stats, _ = stream_once(lengths, row_len, buffer_size)
    finally:
        kernels._COMPILED = saved
    return {"docs": len(lengths), "utilization": stats.utilization, "docs_per_s": len(lengths) / t}


def streaming(cases: list[tuple[str, np.ndarray, int]], repeats: int, numpy_docs: int) -> dict[str, Any]:
    """Every distribution at every buffer size; the smallest buffer reaching 99.9% per distribution."""
    for name, lengths, row_len in cases:                     # warm-up: compile (or load) the loop once
        stream_once(lengths[:20_000], row_len, 1024)
    out = []
    for name, lengths, row_len in cases:
        sweep = [stream_case(lengths, row_len, b, repeats) for b in BUFFERS]
        reach = [r["buffer"] for r in sweep if r["utilization"] >= 0.999]
        out.append({"case": name, "row_len": row_len, "docs": len(lengths), "sweep": sweep,
                    "smallest_buffer_999": reach[0] if reach else None,
                    "numpy_path": numpy_path_case(lengths[:numpy_docs], row_len) if kernels.COMPILED else None})
    return {"compiled": kernels.COMPILED, "batch": BATCH, "repeats": repeats, "cases": out}
