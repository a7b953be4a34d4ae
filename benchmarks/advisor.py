"""Advisor vs exhaustive grid, on three workloads of different shapes, measured in one run.

For each workload: run the advisor (coordinate descent with early stopping) and the exhaustive grid
over the same knobs (``SearchSpace.grid``), with the same probe length; then re-measure the advisor's
choice and the grid's best in interleaved A/B rounds (medians), because a grid's best of many short
probes is biased upwards by noise (winner's curse). Targets: tuned >= 95% of the grid best's
throughput, advisor time <= 15% of grid time, memory prediction within 10% of the measured peak.
A fourth workload (``advisor_stream.py``) is a script reading an unsharded IterableDataset: there the
target is that the advice never adds loader workers (they would duplicate the data) and shows the fix.

``python -m benchmarks.advisor [--quick]`` writes reports/benchmarks/advisor.md and .json.
Torch runs with one intra-op thread: the benchmark machine is shared, and with one thread a busy
neighbour slows a probe instead of stalling a two-thread barrier, which keeps the A/B ratios stable.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from benchmarks.common import machine, write_report
from benchmarks.advisor_stream import render_stream_case, run_stream_case
from benchmarks.advisor_workloads import build_compute_bound, build_input_bound, build_memory_limited
from throughput.advisor.isolate import start_server
from throughput.advisor.search import search
from throughput.advisor.space import SearchSettings, SearchSpace
from throughput.advisor.trials import ProbeResult, describe_config
from throughput.advisor.workload import (DEFAULT_MIN_MEASURE_S, BuildFn, WorkloadTarget, device_fixed_settings,
                                        supported_precisions)

MIB = 2**20
AB_ROUNDS = 5
AB_WINDOW_S = {False: 0.5, True: 0.3}   # seconds of measured steps per A/B run, at least (by quick)


@dataclass(frozen=True)
class Case:
    name: str
    shape: str
    build: BuildFn
    space: SearchSpace
    budget_bytes: int | None
    start: Mapping[str, Any]


def cases(quick: bool) -> list[Case]:
    """Full mode: realistic knob ranges (grids of 50-72 configurations). Quick mode (CI): smaller global
    batches and grids, so the time ratio is less favourable there than in full mode."""
    amp = supported_precisions()
    fixed = device_fixed_settings()
    g = 32 if quick else 64      # global batch (samples)
    read_ms = 0.5 if quick else 1.0
    workers = (0, 1, 2, 4) if quick else (0, 1, 2, 3, 4)
    prefetch = (2,) if quick else (2, 4)
    return [
        Case("input_bound", f"{read_ms:g} ms storage read + CPU feature work per sample, tiny model",
             functools.partial(build_input_bound, read_s=read_ms / 1000),
             SearchSpace(target_global_batch=g, micro_batch_size=(g // 8, g // 4, g // 2, g)[1 if quick else 0:],
                         num_workers=workers, prefetch_factor=prefetch, amp=amp, fixed=fixed), None,
             {"micro_batch_size": g // 4}),
        Case("compute_bound", "wide MLP on in-memory tensors", build_compute_bound,
             SearchSpace(target_global_batch=g, micro_batch_size=(g // 16, g // 8, g // 4, g // 2, g)[1 if quick else 0:],
                         num_workers=workers[:3], prefetch_factor=prefetch, amp=amp, fixed=fixed), None,
             {"micro_batch_size": g // 8}),
        Case("memory_limited", f"token-wise MLP, activations hit a {32 if quick else 64} MiB budget",
             functools.partial(build_memory_limited, seq=128 if quick else 256),
             SearchSpace(target_global_batch=16, micro_batch_size=(1, 2, 4, 8, 16),
                         num_workers=(0,) if quick else (0, 1), prefetch_factor=prefetch, amp=amp,
                         activation_checkpointing=(False, True), fixed=fixed),
             (32 if quick else 64) * MIB, {"micro_batch_size": 1}),
    ]


def _feasible(r: ProbeResult, budget: int | None) -> bool:
    return r.ok and (budget is None or r.peak_memory_bytes is None or r.peak_memory_bytes <= budget)


def target_for(build: BuildFn, quick: bool) -> WorkloadTarget:
    """The probe target every side uses (advisor, grid, A/B): the same probes, so the same costs."""
    return WorkloadTarget(build, min_measure_s=0.1 if quick else DEFAULT_MIN_MEASURE_S)


def run_grid(case: Case, steps: int, quick: bool) -> tuple[dict[str, Any], ProbeResult, float, int]:
    target = target_for(case.build, quick)
    t0 = time.perf_counter()
    best: tuple[dict[str, Any], ProbeResult] | None = None
    n = 0
    for cfg in case.space.grid():
        r = target.run(cfg, steps)
        n += 1
        if _feasible(r, case.budget_bytes) and (best is None or (r.samples_per_s or 0) > (best[1].samples_per_s or 0)):
            best = (cfg, r)
    if best is None:
        raise RuntimeError(f"{case.name}: no grid configuration fits the budget")
    return best[0], best[1], time.perf_counter() - t0, n


def ab(build: BuildFn, a: Mapping[str, Any], b: Mapping[str, Any], rounds: int, steps: int, quick: bool = False
       ) -> tuple[list[ProbeResult], list[ProbeResult]]:
    """Interleaved A/B in the order a b, b a, a b, ... (so neither side always goes first), one target, so
    drift hits both alike. Round i's pair is adjacent in time: ``paired_ratio`` compares within rounds."""
    target = target_for(build, quick)
    ra: list[ProbeResult] = []
    rb: list[ProbeResult] = []
    for i in range(rounds):
        for side in ((a, ra), (b, rb)) if i % 2 == 0 else ((b, rb), (a, ra)):
            side[1].append(target.run(side[0], steps))
    return ra, rb


def paired_ratio(ra: list[ProbeResult], rb: list[ProbeResult]) -> tuple[float | None, float | None]:
    """Median over rounds of a's samples/s over b's in the same round, and the spread (max - min) of the
    per-round ratios: a load spike on the shared machine hits one round, not the median."""
    ratios = sorted(x.samples_per_s / y.samples_per_s for x, y in zip(ra, rb)
                    if x.samples_per_s and y.samples_per_s)
    return (statistics.median(ratios), ratios[-1] - ratios[0]) if ratios else (None, None)


def _median(rs: list[ProbeResult], field: str) -> float | None:
    values = [getattr(r, field) for r in rs if getattr(r, field) is not None]
    return statistics.median(values) if values else None


def run_case(case: Case, quick: bool) -> dict[str, Any]:
    steps = 3 if quick else 5
    settings = SearchSettings(probe_steps=steps, memory_budget_bytes=case.budget_bytes)
    t0 = time.perf_counter()
    advised = search(target_for(case.build, quick), case.space, settings, start=case.start)
    advisor_s = time.perf_counter() - t0
    grid_cfg, grid_r, grid_s, grid_n = run_grid(case, steps, quick)
    # The final A/B decides the reported ratio, so it must not be a handful of milliseconds: each run
    # measures at least AB_WINDOW_S of steps (at the faster of the two rates seen so far), 5 rounds.
    rate = max(advised.result.samples_per_s or 0.0, grid_r.samples_per_s or 0.0)
    ab_steps = max(2 * steps, math.ceil(AB_WINDOW_S[quick] * rate / case.space.target_global_batch))
    tuned, best = ab(case.build, advised.config, grid_cfg, rounds=AB_ROUNDS, steps=ab_steps, quick=quick)
    tuned_sps, best_sps = _median(tuned, "samples_per_s"), _median(best, "samples_per_s")
    ratio, spread = paired_ratio(tuned, best)
    # The advisor validated its choice by running it: that run is the measured peak the prediction is
    # judged against. Every probe runs in a fresh process, so the A/B rounds measure the same quantity
    # again; their median is shown beside it as a check of repeatability.
    measured_peak = advised.result.peak_memory_bytes
    predicted = advised.predicted_peak_bytes
    mem_err = None
    if case.budget_bytes is not None and predicted and measured_peak:
        mem_err = abs(predicted - measured_peak) / measured_peak
    return {
        "workload": case.name, "shape": case.shape, "grid_size": grid_n, "advisor_probes": len(advised.trials),
        "advisor_config": describe_config(advised.config), "grid_best_config": describe_config(grid_cfg),
        "same_config": dict(advised.config) == dict(grid_cfg),
        "tuned_samples_per_s": tuned_sps, "grid_best_samples_per_s": best_sps,
        "baseline_samples_per_s": advised.baseline.result.samples_per_s,
        "throughput_ratio": ratio, "ratio_spread": spread,
        "advisor_s": advisor_s, "grid_s": grid_s, "time_ratio": advisor_s / grid_s, "ab_steps": ab_steps,
        "memory_budget_bytes": case.budget_bytes, "predicted_peak_bytes": predicted,
        "measured_peak_bytes": measured_peak, "memory_prediction_error": mem_err,
        "ab_peak_bytes": _median(tuned, "peak_memory_bytes"),
        "findings": [f.title for f in advised.findings], "notes": list(advised.notes),
    }


def render(result: dict[str, Any]) -> str:
    lines = ["# Advisor vs exhaustive grid", "",
             f"Mode: {'quick' if result['quick'] else 'full'}; {result['machine']['cpu']} "
             f"({result['machine']['cores']} cores, shared); torch {torch.__version__}, 1 intra-op thread; "
             f"total {result['total_s']:.0f} s; load average {result['load_average_1min'][0]:.1f} at the start, "
             f"{result['load_average_1min'][1]:.1f} at the end (other jobs share the cores). Every probe (advisor, "
             f"grid, A/B) runs in a fresh child of one probe server, started once in {result['server_start_s']:.1f} s "
             "before any timing. Targets: throughput ratio >= 0.95, time ratio <= 0.15, memory prediction error "
             "<= 10%.", "",
             "| workload | grid configs | advisor probes | tuned / grid best (median of paired A/B rounds) "
             "| advisor time / grid time | memory prediction error |", "|---|---|---|---|---|---|"]
    for c in result["cases"]:
        err = f"{c['memory_prediction_error']:.1%}" if c["memory_prediction_error"] is not None else "n/a"
        ratio = f"{c['throughput_ratio']:.3f}" if c["throughput_ratio"] is not None else "n/a"
        lines.append(f"| {c['workload']} | {c['grid_size']} | {c['advisor_probes']} | {ratio} | "
                     f"{c['time_ratio']:.3f} ({c['advisor_s']:.1f} s / {c['grid_s']:.1f} s) | {err} |")
    lines.append("")
    for c in result["cases"]:
        lines += [f"## {c['workload']}: {c['shape']}", "",
                  f"- advisor: `{c['advisor_config']}`", f"- grid best: `{c['grid_best_config']}`",
                  f"- samples/s: baseline {c['baseline_samples_per_s']:.4g}, tuned {c['tuned_samples_per_s']:.4g}, "
                  f"grid best {c['grid_best_samples_per_s']:.4g} (A/B: {AB_ROUNDS} interleaved rounds of "
                  f"{c['ab_steps']} measured steps each; per-round ratios spread over {c['ratio_spread'] or 0:.3f})"]
        if c["memory_prediction_error"] is not None:
            lines.append(f"- peak memory at the chosen size: predicted {c['predicted_peak_bytes'] / MIB:.2f} MiB "
                         f"(fit of the smaller sizes, without the chosen one), measured {c['measured_peak_bytes'] / MIB:.2f} "
                         f"MiB by the advisor's validating run, {(c['ab_peak_bytes'] or 0) / MIB:.2f} MiB median of the "
                         f"A/B rounds (the same quantity: peak resident memory the probe adds, in a fresh process); "
                         f"budget {(c['memory_budget_bytes'] or 0) / MIB:.0f} MiB")
        lines += [f"- finding: {t}" for t in c["findings"]] + [f"- note: {n}" for n in c["notes"]] + [""]
    if result.get("stream") is not None:
        lines += render_stream_case(result["stream"])
    return "\n".join(lines)


def run(quick: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    # CPU probes run in fresh children of one probe server (throughput.advisor.isolate): started here,
    # once, so that neither the advisor nor the grid of the first workload is charged for it.
    server_s = start_server() if not torch.cuda.is_available() else 0.0
    result: dict[str, Any] = {"benchmark": "advisor", "quick": quick, "machine": machine(), "server_start_s": server_s,
                              "cases": [run_case(c, quick) for c in cases(quick)]}
    result["stream"] = run_stream_case(quick)
    result["load_average_1min"] = [load_before, os.getloadavg()[0]]
    result["total_s"] = time.perf_counter() - t0
    write_report("advisor", render(result), result)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short probes and fewer A/B rounds")
    args = parser.parse_args(argv)
    print(render(run(args.quick)))


if __name__ == "__main__":
    main()
