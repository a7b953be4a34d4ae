"""The operator window's cost outside the window, and whether it finds the matmul.

Runs ``benchmarks/_ops_workload.py`` (forward = one large matmul, data = a per-sample Python transform)
under ``throughput profile`` in fresh processes, interleaved, three ways:

- ``off``: ``--no-memory`` (no view window at all): the baseline;
- ``memory``: the default memory window (phase boundaries of 5 steps read, steps kept in the figures);
- ``ops``: ``--ops 5`` (torch.profiler over steps 3-7, steps 2-8 left out of the figures).

For each run the median wall time of the steps after the window (index >= 9 in every mode, read from
steps.jsonl) is taken; the report gives the median over runs per mode, the ratio to ``off`` (target:
within 2%), the window's own slowdown, and the top forward operator of every ``--ops`` run. Load
average is recorded at the start and the end.

    python -m benchmarks.ops_window [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import machine, main, write_report

REPO = Path(__file__).resolve().parent.parent
WORKLOAD = REPO / "benchmarks" / "_ops_workload.py"
DISPATCH = REPO / "benchmarks" / "_ops_dispatch.py"
MODES = {"off": ["--no-memory"], "memory": [], "ops": ["--ops", "5"]}
# glibc's malloc adapts its mmap/trim thresholds to what the process freed before, so torch.profiler's
# buffers change how often later steps fault their tensors in again (measured: after the window the
# steps ran up to 23% *faster* with default malloc). Both thresholds fixed, as in zerocode_overhead.py,
# measure the window's own effect; the default-malloc table shows the allocator's.
MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}
FIRST_AFTER_WINDOW = 9   # warm-up 0-1, profiler warm-up 2, window 3-7, stop paid in 8


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _run(mode: str, steps: int, width: int, batch: int, out: Path, malloc: dict[str, str]) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **malloc)
    cmd = [sys.executable, "-m", "throughput", "profile", "--quiet", "--no-telemetry", "--out", str(out),
           *MODES[mode], str(WORKLOAD), "--steps", str(steps), "--width", str(width), "--batch", str(batch),
           "--cpu-times", str(out.with_suffix(".cpu"))]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} run failed: {proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    after = [r["wall_s"] for r in rows if r["index"] >= FIRST_AFTER_WINDOW]
    summary = json.loads((out / "summary.json").read_text())
    cpu = [float(x) for x in out.with_suffix(".cpu").read_text().split()][FIRST_AFTER_WINDOW:]
    result: dict[str, Any] = {"after_window_median_s": statistics.median(after), "steps_after": len(after),
                              "after_window_cpu_median_s": statistics.median(cpu)}
    if summary.get("operators"):
        ops = summary["operators"]
        result["slowdown"] = ops["slowdown"]
        result["top_forward"] = next(o["name"] for o in ops["top"] if o["phase"] == "forward")
    return result


def _measure(rounds: int, steps: int, width: int, batch: int, malloc: dict[str, str]) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = list(MODES) if r % 2 == 0 else list(reversed(MODES))   # ABC CBA ...
            for mode in order:
                results[mode].append(_run(mode, steps, width, batch, Path(tmp) / f"{mode}-{r}", malloc))
    medians = {m: statistics.median(x["after_window_median_s"] for x in results[m]) for m in MODES}
    cpu = {m: statistics.median(x["after_window_cpu_median_s"] for x in results[m]) for m in MODES}
    return {"median_step_after_window_s": medians, "ratio_to_off": {m: medians[m] / medians["off"] for m in MODES},
            "median_cpu_after_window_s": cpu, "cpu_ratio_to_off": {m: cpu[m] / cpu["off"] for m in MODES},
            "top_forward_per_ops_run": [x["top_forward"] for x in results["ops"]],
            "window_slowdown": [x["slowdown"] for x in results["ops"]], "runs": results}


def _dispatch(rounds: int) -> dict[str, Any]:
    """after/before ratio of a small operator's dispatch cost in one process, with and without a window."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    ratios: dict[str, list[float]] = {"off": [], "ops": []}
    for r in range(rounds):
        for mode in (("off", "ops") if r % 2 == 0 else ("ops", "off")):
            out = subprocess.run([sys.executable, str(DISPATCH), mode], capture_output=True, text=True, env=env,
                                 check=True, timeout=300).stdout
            d = json.loads(out.strip().splitlines()[-1])
            ratios[mode].append(d["after_us"] / d["before_us"])
    return {m: {"after_over_before": v, "median": statistics.median(v)} for m, v in ratios.items()}


def _table(title: str, res: dict[str, Any]) -> list[str]:
    medians, ratios = res["median_step_after_window_s"], res["ratio_to_off"]
    cpu, cpu_ratios = res["median_cpu_after_window_s"], res["cpu_ratio_to_off"]
    tops, slowdowns = res["top_forward_per_ops_run"], res["window_slowdown"]
    lines = [f"## {title}", "", "| mode | wall: median step after the window | ratio to off | CPU: median step "
             "after the window | ratio to off |", "|---|---|---|---|---|"]
    lines += [f"| `{m}` ({' '.join(MODES[m]) or 'default'}) | {medians[m] * 1e3:.2f} ms | {ratios[m]:.3f} | "
              f"{cpu[m] * 1e3:.2f} ms | {cpu_ratios[m]:.3f} |" for m in MODES]
    return lines + ["", f"Top forward operator in each `--ops` run: {', '.join(sorted(set(tops)))} "
                        f"({tops.count('aten::mm')}/{len(tops)} runs `aten::mm`). Window slowdown (window step "
                        f"time / steady-state step time): {', '.join(f'{s:.2f}x' for s in slowdowns)}.", ""]


def run(quick: bool) -> dict[str, Any]:
    rounds, steps, width, batch = (3, 30, 768, 96) if quick else (7, 60, 1024, 128)
    load_start = _loadavg()
    fixed = _measure(rounds, steps, width, batch, MALLOC_ENV)
    load_mid = _loadavg()
    default = _measure(rounds, steps, width, batch, {})
    dispatch = _dispatch(rounds * 2)
    load_end = _loadavg()
    data = {"dispatch": dispatch, "machine": machine(), "quick": quick, "rounds": rounds, "steps": steps, "width": width, "batch": batch,
            "load": [load_start, load_mid, load_end], "malloc_fixed": fixed, "malloc_default": default}
    md = [f"# Operator window (`--ops`) cost outside the window ({'quick' if quick else 'full'})", "",
          f"Machine: {data['machine']}. Load average {load_start} at the start, {load_mid} between the two "
          f"tables, {load_end} at the end.", "",
          f"`benchmarks/_ops_workload.py --steps {steps} --width {width} --batch {batch}` (OMP_NUM_THREADS=1), "
          f"{rounds} interleaved rounds (ABC CBA ...) of fresh `throughput profile --no-telemetry` processes per "
          f"mode. Figure: median over runs of each run's median wall time of steps >= {FIRST_AFTER_WINDOW} "
          "(after the window in every mode), as wall time (steps.jsonl) and as the training thread's CPU time "
          "(measured inside the workload; less moved by other processes on a shared machine). Target: `ops` "
          "within 2% of `off`.", ""]
    md += _table("glibc malloc thresholds fixed (the window's own effect)", fixed)
    md += _table("default glibc malloc (the allocator's adaptation included)", default)
    md += ["## Dispatch cost after the window (one process, CPU time)", "",
           "`benchmarks/_ops_dispatch.py`: `torch.add` on 8x8 tensors, per call, after / before a torch.profiler "
           "window run as `--ops` runs it (`off`: no window), median of "
           f"{len(dispatch['off']['after_over_before'])} processes per mode:", "",
           f"- `off`: {dispatch['off']['median']:.3f}  (runs: "
           f"{', '.join(f'{x:.3f}' for x in dispatch['off']['after_over_before'])})",
           f"- `ops`: {dispatch['ops']['median']:.3f}  (runs: "
           f"{', '.join(f'{x:.3f}' for x in dispatch['ops']['after_over_before'])})", ""]
    path = write_report("ops_window", "\n".join(md), data)
    print(path.read_text())
    return data


if __name__ == "__main__":
    main(run, __doc__)
