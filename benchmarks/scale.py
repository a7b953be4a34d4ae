"""Runs of any length: memory, post-run work and report size against the step count.

Tiny steps (a 4x4 Linear, SGD, one thread) at 1k, 10k, 100k and (full suite) 1M steps, three ways:
plain (no profiler), zero-code (``throughput profile``) and embedded (3 phases + ``step()``, report
written by ``throughput.profile``). Each run is its own process. Per run: max RSS minus the plain run's
of the same length (``wait4``), post-run seconds (the script's last line to the process's exit),
report folder size, and the per-step cost of the profiler (mean step minus plain's mean step, both
timed by the script itself).

The statistics check replays one embedded run's own clock readings into a second recorder that keeps
every step, and compares: counts, totals, means, shares, min, max and std must be identical, quantiles
within the sketch's bound (``throughput.session.sketch``).

Targets (issue 14): RSS growth 10k -> 1M <= 32 MiB; post-run <= 3 s at any length; report folder
<= 16 MiB at 1M; statistics identical / within bound. The zero-code hooks' cost per step ("not worse than
~47 us") is measured apart, against the code the issue measured: benchmarks/zerocode_overhead.py.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tabulate import tabulate

from benchmarks._scale_workload import profiled_steps
from benchmarks.common import machine, main, write_report_by_cpu_kind
from throughput.telemetry.host import read_cpu_ticks

REPO = Path(__file__).resolve().parent.parent
WORKLOAD = REPO / "benchmarks" / "_scale_workload.py"
TARGETS = {"rss_growth_mib": 32.0, "post_run_s": 3.0, "folder_mib_at_1m": 16.0}


def _run(argv: list[str]) -> dict[str, float]:
    """Run a child; its max RSS (MiB), the seconds from its last line to its exit, its mean step."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        _, status, usage = os.wait4(proc.pid, 0)
        exited = time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{text[-2000:]}")
    last = [line for line in text.splitlines() if line.startswith("last_line ")][-1].split()
    return {"max_rss_mib": usage.ru_maxrss / 1024, "post_run_s": exited - float(last[1]),
            "mean_step_s": float(last[2])}


def _folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def measure(steps: int, scratch: Path) -> dict[str, Any]:
    py = sys.executable
    plain = _run([py, str(WORKLOAD), "plain", str(steps)])
    rows: dict[str, Any] = {"steps": steps, "plain": plain}
    for mode in ("zerocode", "embedded"):
        out = scratch / f"{mode}-{steps}"
        argv = ([py, "-m", "throughput", "profile", "--quiet", "--out", str(out), str(WORKLOAD), "plain", str(steps)]
                if mode == "zerocode" else [py, str(WORKLOAD), "embedded", str(steps), str(out)])
        r = _run(argv)
        r["rss_over_plain_mib"] = r["max_rss_mib"] - plain["max_rss_mib"]
        r["folder_mib"] = _folder_mib(out)
        r["cost_per_step_us"] = (r["mean_step_s"] - plain["mean_step_s"]) * 1e6
        rows[mode] = r
    return rows


class _TeeClock:
    """perf_counter, remembering every reading (for the full-retention replay)."""

    def __init__(self) -> None:
        from array import array
        self.readings = array("d")

    def now_s(self) -> float:
        t = time.perf_counter()
        self.readings.append(t)
        return t


class _Replay:
    """A clock that reads back recorded readings, in order."""

    def __init__(self, readings: Any) -> None:
        self._next = iter(readings).__next__

    def now_s(self) -> float:
        return float(self._next())


def check_statistics(steps: int) -> dict[str, Any]:
    """One embedded run (bounded, default caps) and the same clock readings replayed into a recorder
    that keeps every step; the summaries compared field by field."""
    import torch

    from throughput.analysis.summary import summarize
    from throughput.capture.profiler import Profiler
    from throughput.capture.recorder import Recorder
    from throughput.session.retention import Retention, RetentionPolicy
    from throughput.session.sketch import RELATIVE_ACCURACY

    torch.manual_seed(0)
    model, x = torch.nn.Linear(4, 4), torch.randn(2, 4)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    clock = _TeeClock()
    prof = Profiler(clock=clock, warmup_steps=2, progress=False, device="cpu")
    prof.start()
    profiled_steps(prof, steps, model, opt, x, keep_loss=False)
    bounded = prof.stop()
    replay = _Replay(clock.readings[1:])            # [0] is the profiler's origin
    full_rec = Recorder(replay, warmup_steps=2, retention=RetentionPolicy(sampled_steps=steps + 1,
                                                                           recent_steps=0, slowest_steps=0))
    for _ in range(steps):
        for name in ("forward", "backward", "optimizer"):
            full_rec.close(full_rec.open(name))
        full_rec.end_step()
    snap = full_rec.snapshot()
    full = replace(bounded, steps=snap.steps, spans=(), retention=Retention(
        policy=full_rec.policy, steps_seen=snap.steps_seen, measured=snap.measured))
    a, b = summarize(full), summarize(bounded)
    assert a.step_time is not None and b.step_time is not None
    exact = {"count": (a.step_time.count, b.step_time.count), "mean_s": (a.step_time.mean_s, b.step_time.mean_s),
             "min_s": (a.step_time.min_s, b.step_time.min_s), "max_s": (a.step_time.max_s, b.step_time.max_s),
             "std_s": (a.step_time.std_s, b.step_time.std_s)}
    for pa, pb in zip(a.phases, b.phases):
        exact[f"{pa.phase}.total_s"] = (pa.total_s, pb.total_s)
        exact[f"{pa.phase}.share"] = (pa.share, pb.share)
    identical = all(u == v for u, v in exact.values())
    durations = sorted(s.duration_s for s in full.steps if s.index >= 2)
    within = {}
    for q, got in ((0.05, b.step_time.p5_s), (0.5, b.step_time.median_s), (0.95, b.step_time.p95_s)):
        rank = q * (len(durations) - 1)
        lo, hi = durations[math.floor(rank)], durations[math.ceil(rank)]
        within[f"p{round(q * 100)}"] = {"sketch_s": got, "exact_s": a.step_time.p5_s if q == 0.05 else
                                        a.step_time.median_s if q == 0.5 else a.step_time.p95_s,
                                        "within_bound": (1 - RELATIVE_ACCURACY) * lo * (1 - 1e-12) <= got
                                        <= (1 + RELATIVE_ACCURACY) * hi * (1 + 1e-12)}
    return {"steps": steps, "kept_steps": len(bounded.steps), "exact_identical": identical,
            "mismatches": {k: v for k, v in exact.items() if v[0] != v[1]}, "quantiles": within}


def plot_server_footprint(settle_s: float = 0.5, limit_s: float = 120.0) -> dict[str, Any]:
    """What a profiled run carries beside it whatever its length: the plot server
    (``throughput/report/plot_server.py``) once its imports and warm-up figure are done, i.e. once its CPU
    time has stopped growing for ``settle_s``. Its peak RSS (MiB) and CPU seconds; ``{"started": False}``
    where no server starts here (one core, no matplotlib)."""
    from throughput.report import plot_server
    plot_server.prestart()
    server = plot_server.take()
    if server is None:
        return {"started": False}
    try:
        cpu_s, last, settled_since = _cpu_s(server.pid), -1.0, time.monotonic()
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and time.monotonic() - settled_since < settle_s:
            time.sleep(0.05)
            cpu_s = _cpu_s(server.pid)
            if cpu_s != last:
                last, settled_since = cpu_s, time.monotonic()
        status = Path(f"/proc/{server.pid}/status").read_text()
        peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    finally:
        server.close()
    return {"started": True, "peak_rss_mib": peak_kib / 1024, "cpu_s": cpu_s,
            "measured_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def _cpu_s(pid: int) -> float:
    return (read_cpu_ticks(pid) or 0) / os.sysconf("SC_CLK_TCK")


def run(quick: bool) -> dict[str, Any]:
    counts = (1_000, 10_000, 100_000) if quick else (1_000, 10_000, 100_000, 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(n, Path(tmp)) for n in counts]
    check = check_statistics(100_000 if quick else 1_000_000)
    load = os.getloadavg()
    data = {"machine": machine(), "quick": quick, "load_average": load, "runs": results, "statistics": check,
            "plot_server": plot_server_footprint(), "targets": TARGETS}
    write_report_by_cpu_kind("scale", _markdown(data), data)
    return data


def _markdown(d: dict[str, Any]) -> str:
    rows = []
    for r in d["runs"]:
        for mode in ("zerocode", "embedded"):
            m = r[mode]
            rows.append([f"{r['steps']:,}", mode, f"{m['rss_over_plain_mib']:+.1f}", f"{m['post_run_s']:.2f}",
                         f"{r['plain']['post_run_s']:.2f}", f"{m['folder_mib']:.2f}", f"{m['cost_per_step_us']:.1f}",
                         f"{r['plain']['mean_step_s'] * 1e6:.1f}"])
    by = {(r["steps"], mode): r[mode] for r in d["runs"] for mode in ("zerocode", "embedded")}
    growth = {mode: by[(max(r["steps"] for r in d["runs"]), mode)]["rss_over_plain_mib"]
              - by[(10_000, mode)]["rss_over_plain_mib"] for mode in ("zerocode", "embedded")}
    post = max(m["post_run_s"] for m in by.values())
    s = d["statistics"]
    la = ", ".join(f"{x:.1f}" for x in d["load_average"])
    return "\n".join([
        "# Runs of any length", "",
        f"Machine: {d['machine']}; load average {la} at the end; {'quick' if d['quick'] else 'full'} run "
        "(`python -m benchmarks.scale [--quick]`). Tiny CPU steps (4x4 Linear, SGD, one thread); each run "
        "its own process. RSS is the process's max RSS minus the plain run's of the same length; post-run is "
        "the script's last line to the process's exit (plain's exit: the same for the plain run, i.e. python "
        "and torch shutting down, which the profiled runs pay too); cost/step is the profiled mean step minus "
        "plain's (both timed inside the script: on a busy machine this difference is noise, see "
        "reports/benchmarks/overhead.md for paired measurements)." + _plot_server_note(d.get("plot_server")), "",
        tabulate(rows, headers=["steps", "mode", "RSS over plain (MiB)", "post-run (s)", "plain's exit (s)",
                                "report folder (MiB)", "cost / step (us)", "plain step (us)"], tablefmt="github", disable_numparse=True), "",
        f"- RSS growth from 10k to the longest run: zero-code {growth['zerocode']:+.1f} MiB, embedded "
        f"{growth['embedded']:+.1f} MiB (target <= {TARGETS['rss_growth_mib']:.0f} MiB).",
        f"- Longest post-run work: {post:.2f} s (target <= {TARGETS['post_run_s']:.0f} s on 2 cores).",
        f"- Statistics of a {s['steps']:,}-step embedded run (kept {s['kept_steps']:,} steps in full) against the "
        f"same clock readings replayed with every step kept: exact fields identical: {s['exact_identical']}"
        + (f" (differences: {s['mismatches']})" if s["mismatches"] else "") + "; quantiles within the "
        "sketch's bound: " + ", ".join(f"{k} {v['sketch_s'] * 1e6:.2f} us vs {v['exact_s'] * 1e6:.2f} us "
                                        f"({'yes' if v['within_bound'] else 'NO'})" for k, v in s["quantiles"].items())
        + ".", "",
    ])


def _plot_server_note(footprint: dict[str, Any] | None) -> str:
    """The plot server is a process of its own: not in the RSS column, so said apart (when measured)."""
    if not footprint:
        return ""
    if not footprint["started"]:
        return " No plot server starts on this machine (one usable core or no matplotlib)."
    return (" The plot server (`throughput/report/plot_server.py`, a process of its own started with the run so "
            "that matplotlib is imported by the report's time) is not in the RSS column: measured apart "
            f"({footprint['measured_utc']}), it holds {footprint['peak_rss_mib']:.0f} MiB at its peak and spent "
            f"{footprint['cpu_s']:.2f} s of CPU on its imports, the same whatever the step count.")


if __name__ == "__main__":
    main(run, __doc__)
