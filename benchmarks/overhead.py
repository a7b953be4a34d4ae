"""Profiler overhead: plain loop vs the embedded profiler vs torch.profiler, interleaved in one process.

Three small CPU models are sized so a training step takes about 2, 10 and 50 ms. Blocks of steps of
each variant alternate round after round: 128 steps below 10 ms (the recorder replays its log every 128
steps, so every block carries its share of that work), 8 from 10 ms (more pairs; a replay is ~0.01% of
such a block). Each block gives its mean step time, by the wall clock and by the
training thread's CPU clock; the overhead is the median over rounds of (profiled block / plain block of
the same round) - 1. Pairing within a round cancels the slow drifts of a shared machine; the CPU clock
leaves out time the thread spent descheduled by other tenants (with one intra-op thread, the training
thread does all the work). Targets (issue 2): overhead <= 3% at 1-5 ms steps, <= 1% at >= 10 ms, judged
on wall time. The direct per-step cost of the API on an empty step is reported too.

The verdict (``row_result``) judges the median over fresh processes by its 90% bootstrap interval, the
processes being the independent units: ``pass`` when the whole interval lies at or below the target,
``FAIL`` when it lies wholly above, ``inconclusive`` when it holds the target (the host's noise is wider
than the margin). Until 2026-12-02 the median alone decided; on the AVX2-only EPYC two full runs of the
same code that day read one row each above its target by the median (2 ms in one run, 10 ms in the
other), each time with an interval that held the target. ``OVERHEAD_PROCESSES=25`` measures in 25
processes instead of 9: the interval narrows about as 1/sqrt(n), at ~1 minute a process.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tabulate import tabulate

from benchmarks.common import machine, main, median, write_report_by_cpu_kind
from benchmarks.within_process import bootstrap_median_ci
import throughput
from throughput.capture.recorder import DRAIN_EVERY_STEPS

TARGETS = {2e-3: 0.03, 10e-3: 0.01, 50e-3: 0.01}
REPO = Path(__file__).resolve().parent.parent
BLOCK_STEPS = DRAIN_EVERY_STEPS   # 128: each block below 10 ms holds one replay of the recorder's log
LONG_BLOCK_STEPS = 8   # for steps of 10 ms and more: more pairs per minute (a replay is ~0.01% there)
Block = Callable[[int], tuple[float, float]]   # runs n steps -> (wall seconds, thread CPU seconds)


class Workload:
    """An MLP training step on fixed random data, sized by ``width``."""

    def __init__(self, width: int, batch: int = 64) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(),
                                         torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 1))
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.batches = [(torch.randn(batch, width), torch.randn(batch, 1)) for _ in range(8)]

    def data(self, n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``n`` steps, as an iterator: every variant iterates its data, as a training loop
        iterates its DataLoader. (A loop over a generator, no profiler anywhere, measured +1.2% at 11 ms
        steps against one indexing the batch list: median of 5 processes, A/A +0.1%, AMX Xeon 2026-12-02.
        Iterating in every variant keeps that difference out of the profiler's column, whatever its size.)"""
        return (self.batches[i % 8] for i in range(n))

    def plain(self, n: int) -> tuple[float, float]:
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        for x, y in self.data(n):
            loss = torch.nn.functional.mse_loss(self.model(x), y)
            loss.backward()
            self.opt.step()
            self.opt.zero_grad()
        return time.perf_counter() - wall0, time.thread_time() - cpu0

    # The A/A control: ``plain`` again as a function of its own (a new code object, with its own
    # specialised bytecode and inline caches), so its difference from ``plain`` is what this host, this
    # process and this design cannot tell apart from zero.
    plain_copy = types.FunctionType(plain.__code__.replace(), plain.__globals__, "plain_copy")

    def profiled(self, prof: throughput.Profiler) -> Block:
        def run(n: int) -> tuple[float, float]:
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            for x, y in prof.iter(self.data(n)):
                with prof.phase("forward"):
                    loss = torch.nn.functional.mse_loss(self.model(x), y)
                with prof.phase("backward"):
                    loss.backward()
                with prof.phase("optimizer"):
                    self.opt.step()
                    self.opt.zero_grad()
                prof.step(loss=loss)
            return time.perf_counter() - wall0, time.thread_time() - cpu0
        return run

    def torch_profiled(self, n: int) -> tuple[float, float]:
        with quiet_stderr(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
            return self.plain(n)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """torch.profiler's C++ side prints a line per start/stop on fd 2; keep the benchmark log readable."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def calibrate(target_s: float) -> int:
    """The smallest MLP width (a multiple of 32) whose plain step takes at least ``target_s`` (measured
    here, now); from 10 ms on, at least 1.1x, so that steps judged by the ">= 10 ms" rule land above
    10 ms even on a faster moment.

    Widths grow by ~15% until one is slow enough, then the widths between the last two are tried by 32
    (a step's time grows with the width squared: 15% steps alone put the "10 ms" model anywhere from 11
    to 15 ms, and the overhead is smaller at 15). Each width is measured as the measurement will see it:
    the median over five blocks of the mean CPU time of a step in a block of ``BLOCK_STEPS // 8`` steps,
    after three warm steps (the first steps of a new size fault in memory). Single steps, measured
    alone, ran ~30% slower than steps inside a block (cold caches), which put the "2 ms" model at 1.5 ms."""
    margin = 1.1 if target_s >= 10e-3 else 1.0
    block = max(2, BLOCK_STEPS // 8) if target_s < 10e-3 else 2

    def slow_enough(width: int) -> bool:
        w = Workload(width)
        _warm(w)
        per_step = median([w.plain(block)[1] / block for _ in range(5)])   # CPU time: not fooled by a neighbour
        return per_step >= margin * target_s

    below, width = 32, 64
    while width < 4096 and not slow_enough(width):
        below, width = width, max(width + 32, int(width * 1.15) // 32 * 32)
    for finer in range(below + 32, width, 32):
        if slow_enough(finer):
            return finer
    return width


def _warm(w: Workload, seconds: float = 0.3) -> None:
    """Steps until ``seconds`` of CPU time are spent: a new model's first steps run slow (its buffers are
    faulted in, allocator caches fill), ~1.5x for the first few dozen steps of the small models here."""
    spent = 0.0
    while spent < seconds:
        spent += w.plain(4)[1]


def paired(variants: dict[str, Block], rounds: int, steps: int) -> dict[str, list[tuple[float, float]]]:
    """Per round, one block of ``steps`` steps of each variant, the rounds cycling through every order
    of the variants (each variant as often first as last, after each other one as often as before it);
    per block its mean step time (wall, cpu)."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    orders = list(itertools.permutations(variants))
    for r in range(rounds):
        for name in orders[r % len(orders)]:
            wall, cpu = variants[name](steps)
            out[name].append((wall / steps, cpu / steps))
    return out


def overhead(blocks: dict[str, list[tuple[float, float]]], name: str, clock: int) -> float:
    """Median over rounds of (variant block / plain block of the same round) - 1; clock 0 wall, 1 CPU."""
    return statistics.median(v[clock] / p[clock] for v, p in zip(blocks[name], blocks["plain"])) - 1


INTERVAL_LEVEL = 0.9
PROCESSES_ENV = "OVERHEAD_PROCESSES"   # overrides the number of fresh processes (9 full, 3 quick)


def row_result(per_process: list[float], limit: float) -> tuple[str, tuple[float, float]]:
    """``pass``, ``FAIL`` or ``inconclusive`` for one row's per-process overheads against ``limit`` (both
    fractions: 0.03 is 3%), with the 90% bootstrap interval of their median that decided it."""
    low, high = bootstrap_median_ci(per_process, level=INTERVAL_LEVEL)
    if high <= limit:
        return "pass", (low, high)
    if low > limit:
        return "FAIL", (low, high)
    return "inconclusive", (low, high)


def api_cost_per_step_s(n: int = 20000, use_iter: bool = True) -> float:
    """Cost of (iter +) 3 phases + step on an empty step (pure profiler overhead, the log replay
    included), per step: the median of 5 runs of ``n`` steps, by the thread's CPU clock (a shared
    machine's other tenants do not count)."""
    return statistics.median(_api_cost_once(n, use_iter) for _ in range(5))


def _api_cost_once(n: int, use_iter: bool) -> float:
    prof = throughput.Profiler(warmup_steps=0, progress=False)
    items = list(range(n))
    t0 = time.thread_time()
    for _ in (prof.iter(items) if use_iter else iter(items)):
        with prof.phase("forward"):
            pass
        with prof.phase("backward"):
            pass
        with prof.phase("optimizer"):
            pass
        prof.step()
    cost = (time.thread_time() - t0) / n
    prof.stop()
    t0 = time.thread_time()
    for _ in iter(items):
        pass
    return cost - (time.thread_time() - t0) / n


def measure(width: int, target: float, seconds: float) -> dict[str, float]:
    """One process's paired A/B for one model: overheads by wall and CPU clock, and torch.profiler's."""
    w = Workload(width)
    w.plain(5)
    prof = throughput.Profiler(warmup_steps=0, progress=False)
    w.profiled(prof)(BLOCK_STEPS)   # first use: imports, first replay
    # About the same time per target: shorter blocks and fewer rounds for longer steps.
    block = BLOCK_STEPS if target < 10e-3 else LONG_BLOCK_STEPS
    n_rounds = max(6, int(seconds / (block * target)))
    ours = paired({"plain": w.plain, "throughput": w.profiled(prof), "plain copy": w.plain_copy}, n_rounds, block)
    # torch.profiler leaves the process slower for a while after it stops, so a block that follows it
    # would be penalised: it is compared with plain in its own interleaving.
    theirs = paired({"plain": w.plain, "torch.profiler": w.torch_profiled}, max(4, n_rounds // 3), block)
    prof.stop()
    return {"plain_s": median([b[0] for b in ours["plain"]]), "wall": overhead(ours, "throughput", 0),
            "cpu": overhead(ours, "throughput", 1), "torch_wall": overhead(theirs, "torch.profiler", 0),
            "aa_wall": overhead(ours, "plain copy", 0),
            "rounds": n_rounds, "block_steps": block}


def worker(widths: list[int], seconds: float) -> None:
    """``--worker``: measure every model in this fresh process and print one JSON line."""
    torch.set_num_threads(1)
    out = [measure(width, target, seconds) for width, target in zip(widths, TARGETS)]
    print(json.dumps(out))


# glibc gives the model's large buffers back to the kernel after every step and faults them in again:
# 29 page faults a step at width 512, 17,500 at width 2016 (76.8 ms a step instead of 47.1), and on this
# VM a fault's cost varies widely. Fixed thresholds keep the buffers in the heap, for plain and profiled
# runs alike (the profiler itself adds no faults: 71-74 a step with and without it, measured at 416).
WORKER_ENV = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(1 << 30), "OMP_NUM_THREADS": "1"}


def in_fresh_process(*args: str) -> Any:
    """Run this module with ``args`` in a fresh process (WORKER_ENV) and parse its last output line."""
    cmd = [sys.executable, "-m", "benchmarks.overhead", *args]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True,
                          env={**os.environ, **WORKER_ENV})
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict[str, Any]:
    torch.set_num_threads(1)   # a fixed thread count: the other core absorbs machine noise
    # Processes, not rounds, are what the median needs: a process's memory and code layout biases it by
    # up to a point either way (the A/A control's spread), more than its rounds' noise (~0.2%).
    processes, seconds = (3, 2.0) if quick else (9, 4.0)
    processes = int(os.environ.get(PROCESSES_ENV, processes))   # more for a narrower interval (1/sqrt(n))
    if processes < 1:
        raise SystemExit(f"{PROCESSES_ENV} must be at least 1, got {processes}")
    api_cost = api_cost_per_step_s(5000 if quick else 20000)
    api_cost_phases = api_cost_per_step_s(5000 if quick else 20000, use_iter=False)
    print("calibrating", flush=True)
    widths = in_fresh_process("--calibrate")
    per_process = []
    for i in range(processes):
        print(f"process {i + 1}/{processes}", flush=True)
        per_process.append(in_fresh_process("--worker", ",".join(map(str, widths)), str(seconds)))
    rows, results = [], []
    for k, (target, limit) in enumerate(TARGETS.items()):
        runs = [p[k] for p in per_process]
        plain_s = median([r["plain_s"] for r in runs])
        wall, cpu = median([r["wall"] for r in runs]), median([r["cpu"] for r in runs])
        torch_wall = median([r["torch_wall"] for r in runs])
        aa = median([r["aa_wall"] for r in runs])
        aa_runs = " ".join(f"{r['aa_wall'] * 100:+.1f}" for r in runs)
        result, (low, high) = row_result([r["wall"] for r in runs], limit)
        aa_low, aa_high = bootstrap_median_ci([r["aa_wall"] for r in runs], level=INTERVAL_LEVEL)
        results.append({"target_step_s": target, "width": widths[k], "plain_median_s": plain_s,
                        "throughput_overhead": wall, "throughput_overhead_cpu": cpu,
                        "per_process_wall": [r["wall"] for r in runs], "per_process_cpu": [r["cpu"] for r in runs],
                        "aa_control": aa, "per_process_aa": [r["aa_wall"] for r in runs],
                        "torch_profiler_overhead": torch_wall, "api_cost_fraction": api_cost / plain_s,
                        "interval": [low, high], "aa_interval": [aa_low, aa_high], "result": result,
                        "limit": limit, "pass": result == "pass", "median_at_or_below_limit": wall <= limit,
                        "rounds_per_process": runs[0]["rounds"],
                        "block_steps": runs[0]["block_steps"]})
        rows.append([f"{plain_s * 1e3:.1f} ms", widths[k], f"{wall:+.2%}", f"{low:+.2%}..{high:+.2%}",
                     " ".join(f"{r['wall'] * 100:+.1f}" for r in runs), f"{cpu:+.2%}",
                     f"{aa:+.2%}, {aa_low:+.2%}..{aa_high:+.2%} ({aa_runs})",
                     f"{api_cost / plain_s:.3%}",
                     f"{torch_wall:+.2%}", f"<= {limit:.0%}", result])
    head = ["plain step (median)", "MLP width", "throughput overhead (wall)", "90% interval", "per process (%)",
            "(thread CPU)", "A/A control, interval (per process)", "API cost / step",
            "torch.profiler overhead (wall)", "target", "result"]
    load = os.getloadavg()[0]
    md = "\n".join([
        "# Profiler overhead", "",
        f"Machine: {machine()}; load average {load:.1f} at the end (other jobs share the 2 cores); "
        f"embedded API cost on an empty step (thread CPU time, median of 5): 3 phases + step "
        f"{api_cost_phases * 1e6:.1f} us, iter + 3 phases + step {api_cost * 1e6:.1f} us (target <= 8 us on "
        "an AVX2-only AMD EPYC); "
        f"{'quick' if quick else 'full'} run. Plain, throughput's embedded profiler (iter + 3 phases + "
        "step(loss)) and torch.profiler (CPU activity) run the same MLP training loop in interleaved blocks "
        f"in one process ({BLOCK_STEPS} steps a block below 10 ms, so that each block carries one replay of "
        f"the recorder's log; {LONG_BLOCK_STEPS} from 10 ms). A process's overhead = median over rounds of "
        "(profiled block mean / plain block mean of the same round) - 1, by the wall clock (the target) and "
        "by the training thread's CPU clock (leaves out time the thread was descheduled by other tenants). "
        "Every variant iterates the same generator of batches, as a training loop iterates its DataLoader. "
        "A third variant in the same rounds, the plain loop again as a function of its own, is the A/A "
        "control: its 'overhead' is what this design, on this host, measures for no difference at all "
        "(the rounds cycle through every order of the three). "
        f"The measurement is repeated in {processes} fresh processes (glibc's trim and mmap thresholds fixed, "
        "so the model's buffers stay in the heap instead of being faulted in again every step, which made "
        "step times noisy on this VM; plain and profiled alike) and the median is shown: one process's "
        "memory layout favours or penalises a variant by a point or more (cache aliasing), which a "
        "single process cannot average out. `API cost / step` is the measured cost of iter + 3 phases + "
        f"step on an empty step ({api_cost * 1e6:.1f} us, the log replay included) over the plain step: the "
        "profiler's own code. Inside a real step the same code costs more, because tensor work has pushed "
        "the interpreter's data out of the CPU caches. Result: the median over processes judged by its 90% "
        "bootstrap interval (the processes resampled): `pass` when the whole interval is at or below the "
        "target, `FAIL` when it lies wholly above, `inconclusive` when it holds the target (this host's "
        "noise, which the A/A control's interval shows, is wider than the margin; more processes narrow "
        "it). A quick run's 3 processes give wide intervals: a smoke test, not a verdict.", "",
        tabulate(rows, headers=head, tablefmt="github"), "",
    ])
    data = {"machine": machine(), "quick": quick, "load_average_end": load, "api_cost_per_step_s": api_cost,
            "api_cost_3_phases_step_s": api_cost_phases,
            "processes": processes, "results": results}
    write_report_by_cpu_kind("overhead", md, data)
    print(md)
    return data


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker([int(w) for w in sys.argv[2].split(",")], float(sys.argv[3]))
    elif sys.argv[1:2] == ["--calibrate"]:
        torch.set_num_threads(1)
        print(json.dumps([calibrate(target) for target in TARGETS]))
    else:
        main(run, __doc__)
