"""Benchmark: sequence packing. Writes reports/benchmarks/packing.md and .json.

1. Planning on 1,000,000 document lengths (100,000 with --quick): lognormal (median 300, clipped to
   [1, 4096], fixed seed) at row lengths 2048 and 4096, uniform [1, 2048] at 2048, and bimodal (chat/SFT
   shape: 95% lognormal median 120, 5% uniform in [0.9, 1] x 2048) at 2048. Reports token
   utilization beside the lower bound on rows, planning docs/s (median of repeats) for the histogram BFD
   and once for the per-piece exact BFD, and the padding baselines (one document per row padded to the
   row length; dynamic padding to the longest in batches of 8, in data order).
2. Streaming (benchmarks/_packing_stream.py): ``OnlinePacker`` over the same whole streams, buffers of
   256 to 16,384 pieces; utilization and docs/s, the smallest buffer reaching 99.9%, and the stream
   through the numpy path (no compiled loop).
3. The whole path token lists -> packed tensors against TRL's ``pack_dataset(strategy="bfd")`` on the
   same data with the same output on both sides, and the drop-in ``throughput.packing.pack_dataset``
   against ``trl.pack_dataset`` on the same ``Dataset``/``IterableDataset``, interleaved in one process
   (benchmarks/_packing_trl.py), in benchmarks/.venv-trl
   (``make bench-env``; TRL is not a dependency of throughput). The full run creates that environment
   if it is missing; --quick skips the comparison when it is absent and says so.

Run: ``python -m benchmarks.packing [--quick]``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.common import machine
from throughput.packing import pack_lengths
from throughput.packing.plan import apply_overflow

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "reports" / "benchmarks"
TRL_VENV = REPO / "benchmarks" / ".venv-trl"
SEED = 1234
TARGET_UTILIZATION, TARGET_DOCS_PER_S, TARGET_SPEEDUP = 0.999, 3e6, 10.0


def lognormal_lengths(n: int, seed: int = SEED) -> np.ndarray:
    """Median exp(mu) = 300 tokens, sigma 1, rounded and clipped to [1, 4096]."""
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(rng.lognormal(math.log(300), 1.0, n)), 1, 4096).astype(np.int64)


def uniform_lengths(n: int, seed: int = SEED) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 2049, n, dtype=np.int64)


def bimodal_lengths(n: int, row_len: int = 2048, seed: int = SEED) -> np.ndarray:
    """Chat/SFT shape: 95% short (lognormal, median 120, sigma 0.8), 5% near the row length (uniform in
    [0.9, 1] x row_len)."""
    rng = np.random.default_rng(seed)
    short = np.clip(np.rint(rng.lognormal(math.log(120), 0.8, n)), 1, row_len)
    long_ = rng.integers(int(0.9 * row_len), row_len + 1, n)
    return np.where(rng.random(n) < 0.05, long_, short).astype(np.int64)


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def padding_baselines(lengths: np.ndarray, row_len: int) -> dict[str, float]:
    """Token utilization without packing, on the same pieces (documents split at the row length)."""
    pieces = apply_overflow(lengths, row_len, "split").length
    tokens = int(pieces.sum())
    batches = np.array_split(pieces, math.ceil(len(pieces) / 8))
    dynamic = sum(len(b) * int(b.max()) for b in batches)
    return {"one_doc_per_row": tokens / (len(pieces) * row_len), "dynamic_pad_batch8": tokens / dynamic}


def planning_case(name: str, lengths: np.ndarray, row_len: int, repeats: int) -> dict[str, Any]:
    hist_s, plan = median_time(lambda: pack_lengths(lengths, row_len, algorithm="histogram"), repeats)
    bfd_s, exact = median_time(lambda: pack_lengths(lengths, row_len, algorithm="bfd"), 1)
    s = plan.stats
    return {
        "case": name, "row_len": row_len, "docs": len(lengths), "tokens": s.tokens_in, "docs_split": s.docs_split,
        "rows": s.rows, "rows_lower_bound": s.rows_lower_bound, "utilization": s.utilization,
        "utilization_upper_bound": s.tokens_packed / (s.rows_lower_bound * row_len),
        "docs_per_row_mean": s.docs_per_row_mean, "histogram_s": hist_s, "histogram_docs_per_s": len(lengths) / hist_s,
        "exact_bfd_s": bfd_s, "exact_bfd_docs_per_s": len(lengths) / bfd_s,
        "exact_bfd_same_rows": exact.stats.rows == s.rows, **padding_baselines(lengths, row_len)}


def ensure_trl_env() -> str | None:
    """Create benchmarks/.venv-trl with ``make bench-env`` (the one definition of that environment:
    benchmarks/trl-requirements.txt); returns an error text or None."""
    if (TRL_VENV / "bin" / "python").exists():
        return None
    done = subprocess.run(["make", "-C", str(REPO), "bench-env", f"PYTHON={sys.executable}"],
                          capture_output=True, text=True)
    if done.returncode:
        return f"could not install TRL (make bench-env): {done.stderr.strip()[-300:]}"
    return None


def trl_comparison(quick: bool) -> dict[str, Any]:
    if quick and not (TRL_VENV / "bin" / "python").exists():
        return {"status": "skipped: benchmarks/.venv-trl is absent (run `make bench-env`)"}
    error = None if quick else ensure_trl_env()
    if error:
        return {"status": error}
    docs, repeats, train_repeats, scratch_mb = (3_000, 3, 1, 256) if quick else (20_000, 5, 5, 1024)
    cmd = [str(TRL_VENV / "bin" / "python"), "-m", "benchmarks._packing_trl", "--docs", str(docs),
           "--repeats", str(repeats), "--train-repeats", str(train_repeats), "--seed", str(SEED),
           "--scratch-mb", str(scratch_mb)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        return {"status": f"TRL worker failed: {done.stderr.strip()[-500:]}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    med = result["median_s"]
    result["speedup"] = {f"{start}_{out}": med[f"trl_{start}_{out}"] / med[f"ours_{start}_{out}"]
                         for start in ("lists", "arrow") for out in ("flat", "train")}
    result["speedup"].update({f"dropin_{kind}": med[f"trl_dropin_{kind}"] / med[f"ours_dropin_{kind}"]
                              for kind in ("dataset", "stream")})
    result["status"] = "ok"
    return result


def run(quick: bool) -> dict[str, Any]:
    load_start = os.getloadavg()
    n, repeats = (100_000, 3) if quick else (1_000_000, 5)
    logn, unif, bimo = lognormal_lengths(n), uniform_lengths(n), bimodal_lengths(n)
    data = [("lognormal", logn, 2048), ("lognormal", logn, 4096), ("uniform", unif, 2048), ("bimodal", bimo, 2048)]
    cases = [planning_case(name, lengths, row_len, repeats) for name, lengths, row_len in data]
    from benchmarks._packing_stream import streaming
    stream = streaming(data, repeats=3, numpy_docs=100_000 if not quick else 20_000)
    trl = trl_comparison(quick)
    result = {"benchmark": "packing", "quick": quick, "seed": SEED, "planning": cases, "streaming": stream,
              "trl": trl, "machine": machine(),
              "load_avg": {"start": load_start, "end": os.getloadavg()},
              "targets": {"utilization": TARGET_UTILIZATION, "planning_docs_per_s": TARGET_DOCS_PER_S,
                          "speedup_vs_trl": TARGET_SPEEDUP, "streaming_buffer": 1024}}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "packing.json").write_text(json.dumps(result, indent=2) + "\n")
    from benchmarks._packing_md import render
    (OUT / "packing.md").write_text(render(result))
    return result


if __name__ == "__main__":
    res = run(quick="--quick" in sys.argv[1:])
    sys.stdout.write((OUT / "packing.md").read_text())
