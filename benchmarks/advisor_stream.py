"""The advisor benchmark's fourth workload: an input-bound script reading an unsharded IterableDataset.

What a grid (or a naive advisor) would do: measure num_workers=0 and 2 by samples/s and pick 2, which is
"faster" only because every worker yields every sample. What ``throughput advise`` must do: find that the
workers duplicate the stream (sample digests of the first batches, ``advisor/stream_check.py``), never
propose workers, and show the ``get_worker_info`` fix. Both sides run the unmodified script through
``throughput profile`` (``ScriptTarget``), one intra-op thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from throughput.advisor.script import ScriptTarget
from throughput.advisor.stream_check import CHECK_BATCHES, digest_context

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "examples" / "zerocode" / "unsharded_stream.py"


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def run_stream_case(quick: bool) -> dict[str, Any]:
    steps = 6 if quick else 12
    grid: dict[int, dict[str, Any]] = {}
    t0 = time.perf_counter()
    target = ScriptTarget(SCRIPT, ("--steps", "100000"), digests=CHECK_BATCHES, env={"OMP_NUM_THREADS": "1"})
    for workers in (0, 2):              # the grid over loader workers, by samples/s
        r = target.run({"num_workers": workers}, steps)
        grid[workers] = {"samples_per_s": r.samples_per_s, "digests": digest_context(target.last_session)}
    grid_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "throughput", "advise", "--format", "json", "--probe-steps",
                          "2" if quick else "3", "--confirm-rounds", "2" if quick else "3", str(SCRIPT), "--steps",
                          "100000"], capture_output=True, text=True, env=_env(), timeout=3600, cwd=REPO)
    advisor_s = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"advise failed: {out.stderr[-2000:]}")
    advice = json.loads(out.stdout)
    recs = advice["recommendations"]
    return {"workload": "unsharded_stream", "script": str(SCRIPT.relative_to(REPO)), "grid": grid, "grid_s": grid_s,
            "grid_pick": max(grid, key=lambda w: grid[w]["samples_per_s"] or 0.0), "advisor_s": advisor_s,
            "advice_ids": [r["id"] for r in recs],
            "adds_workers": any("num_workers" in r["settings"] for r in recs) or
            "num_workers" in advice["plan"]["settings"],
            "split_finding": next((r for r in recs if r["id"] == "data.worker_split"), None)}


def render_stream_case(c: dict[str, Any]) -> list[str]:
    g0, g2 = c["grid"][0], c["grid"][2]
    d0, d2 = g0["digests"] or {}, g2["digests"] or {}
    ok = not c["adds_workers"] and c["split_finding"] is not None
    return [f"## unsharded_stream: input-bound script, IterableDataset without get_worker_info "
            f"(`{c['script']}`)", "",
            f"- a grid by samples/s: num_workers=0 {g0['samples_per_s']:.4g}, num_workers=2 "
            f"{g2['samples_per_s']:.4g} samples/s -> picks num_workers={c['grid_pick']}; but the first "
            f"{d2.get('digest_batches')} batches with 2 workers held {d2.get('digest_samples')} samples of which "
            f"{d2.get('digest_distinct')} distinct (0 workers: {d0.get('digest_samples')} of "
            f"{d0.get('digest_distinct')}): the extra throughput is duplicated data",
            f"- the advisor ({c['advisor_s']:.0f} s): recommendations {c['advice_ids']}; proposes loader workers: "
            f"{'YES (wrong)' if c['adds_workers'] else 'no'}; shows the get_worker_info fix: "
            f"{'yes' if c['split_finding'] else 'NO'} -> {'target met' if ok else 'TARGET MISSED'}", ""]
