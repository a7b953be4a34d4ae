"""Cost of telemetry on the training step: profiler alone vs + host/NVML samplers vs + py-spy.

An MLP training step of about 10 ms runs under a fresh Profiler per block; the three variants
alternate block after block in one process (ABCCBA...), and overhead = ratio of median step times
(measured by the loop's own clock) - 1. Sampler threads and py-spy start before the block's first
step and stop after its last, so their start-up is not counted; what is counted is what a user's
steps pay while they run. Also reported: the trace size per 1000 steps of 6 phases.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tabulate import tabulate

from benchmarks.common import interleaved, machine, main, median, write_report
from throughput.capture.profiler import Profiler
from throughput.report.trace import build_trace
from throughput.telemetry import TelemetryController
from throughput.telemetry.pyspy import find_py_spy, ptrace_blocker


class Mlp:
    def __init__(self, width: int = 1024, batch: int = 128) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 1))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-4)
        self.x, self.y = torch.randn(batch, width), torch.randn(batch, 1)

    def block(self, make_telemetry: Callable[[], Any]) -> Callable[[int], list[float]]:
        def run(n: int) -> list[float]:
            prof = Profiler(device="cpu", warmup_steps=0, telemetry=make_telemetry())
            times = []
            with prof:
                t0 = time.perf_counter()
                for _ in range(n):
                    with prof.phase("forward"):
                        loss = torch.nn.functional.mse_loss(self.model(self.x), self.y)
                    with prof.phase("backward"):
                        loss.backward()
                    with prof.phase("optimizer"):
                        self.opt.step()
                        self.opt.zero_grad()
                    prof.step()
                    t1 = time.perf_counter()
                    times.append(t1 - t0)
                    t0 = t1
            return times
        return run


def trace_bytes_per_1000_steps() -> int:
    from tests.report.test_trace import make_session   # the same 6-phase fixture the size test uses
    return len(json.dumps(build_trace([make_session(1000)]), separators=(",", ":")))


def host_sample_cost_s(n: int = 200) -> float:
    """Direct cost of one host sample (the sampler thread's work per interval), in seconds."""
    from throughput.telemetry.host import HostSampler
    sampler = HostSampler()
    t0 = time.perf_counter()
    for _ in range(n):
        sampler.sample(time.perf_counter())
    return (time.perf_counter() - t0) / n


def run(quick: bool = False) -> dict[str, Any]:
    torch.set_num_threads(1)
    w = Mlp()
    w.block(lambda: None)(10)   # warm-up
    tmp = Path(tempfile.mkdtemp(prefix="throughput-bench-"))
    variants = {
        "profiler": w.block(lambda: None),
        "+ host & NVML @ 10 Hz": w.block(lambda: TelemetryController(interval_s=0.1)),
    }
    pyspy_ok = find_py_spy() is not None and ptrace_blocker() is None
    if pyspy_ok:
        variants["+ py-spy @ 100 Hz"] = w.block(lambda: TelemetryController(nvml=False, host=False,
                                                                          py_spy_dir=tmp, py_spy_rate=100))
    rounds, block = (6, 30) if quick else (16, 50)
    times = interleaved(variants, rounds=rounds, steps_per_block=block)
    base = median(times["profiler"])
    rows, results = [], {}
    for name, values in times.items():
        ratio = median(values) / base
        results[name] = {"median_step_s": median(values), "ratio": ratio, "steps": len(values)}
        rows.append([name, f"{median(values) * 1e3:.2f} ms", f"{ratio:.3f}", str(len(values))])
    size = trace_bytes_per_1000_steps()
    sample_s = host_sample_cost_s()
    load = os.getloadavg()[0]
    md = "\n".join([
        "# Telemetry overhead", "",
        f"Machine: {machine()}. Interleaved blocks of {block} steps, {rounds} rounds, one process; ratio = "
        "median step time / the profiler-alone median." + ("" if pyspy_ok else " py-spy: not run (no ptrace)."), "",
        tabulate(rows, headers=["variant", "median step", "ratio", "steps"], tablefmt="github"), "",
        f"Host sampler: {sample_s * 1e6:.0f} us per sample, i.e. {sample_s * 10:.3%} of one core at 10 Hz: the "
        "deterministic floor of its overhead; the ratio column also carries the machine's noise "
        f"(1-minute load average {load:.1f} on {machine()['cores']} cores during this run).", "",
        f"Trace size: {size / 1e3:.0f} kB per 1000 steps of 6 phases ({size / 7000:.0f} bytes per event).", "",
    ])
    data = {"machine": machine(), "quick": quick, "results": results, "trace_bytes_per_1000_steps": size,
            "host_sample_cost_s": sample_s, "load_average_1min": load}
    write_report("telemetry_overhead", md, data)
    print(md)
    return data


if __name__ == "__main__":
    main(run, __doc__)
