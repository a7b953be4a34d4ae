"""Every CUDA-only check of the profiler core and of telemetry/MFU, on one GPU, in a few minutes.

Checks: (1) CUDA events resolve without per-step synchronization (one synchronize per run, counted by
DeviceTimer.synchronize_calls and by wrapping the events), (2) host vs device time per phase and
device-busy time within the outer elapsed time, (3) NVML readings while the GPU is busy, (4) MFU of a
bf16 matmul-heavy MLP against the table's dense peak, (5) the ``pytest -m cuda`` tests.
Prints a short table and writes reports/benchmarks/gpu_check.md/.json. Without a GPU it says so
and exits 0 without touching the committed report.

    python -m benchmarks.gpu_check [--quick]
"""

from __future__ import annotations

import throughput
import subprocess
import sys
import time
from typing import Any

from tabulate import tabulate

from benchmarks.common import machine, main, write_report


class CountingEvent:
    """A torch.cuda.Event that counts its synchronize() calls (shared counter)."""

    calls = 0

    def __init__(self) -> None:
        import torch
        self._ev = torch.cuda.Event(enable_timing=True)

    def record(self) -> None:
        self._ev.record()

    def query(self) -> bool:
        return bool(self._ev.query())

    def synchronize(self) -> None:
        CountingEvent.calls += 1
        self._ev.synchronize()

    def elapsed_time(self, end: "CountingEvent") -> float:
        return float(self._ev.elapsed_time(end._ev))


def _mlp(width: int, layers: int) -> Any:
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(*[torch.nn.Linear(width, width, bias=False) for _ in range(layers)]).to(
        device="cuda", dtype=torch.bfloat16)


def check_events_and_phases(steps: int = 40, width: int = 4096, tokens: int = 8192) -> dict[str, Any]:
    """Profile a bf16 MLP with counting events: syncs per run, device times resolved, host vs device."""
    import torch
    from throughput.capture.profiler import Profiler

    model, x = _mlp(width, 4), torch.randn(tokens, width, device="cuda", dtype=torch.bfloat16)
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    CountingEvent.calls = 0
    real_sync, torch_syncs = torch.cuda.synchronize, [0]

    def counting_sync(*a: Any, **k: Any) -> None:
        torch_syncs[0] += 1
        real_sync(*a, **k)

    outer0, outer1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    real_sync()
    prof = Profiler(device="cuda", warmup_steps=2, event_factory=CountingEvent)
    torch.cuda.synchronize = counting_sync  # type: ignore[assignment]
    try:
        outer0.record()
        for _ in range(steps):
            _train_step(prof, model, opt, x)
        outer1.record()
        resolved_in_run = sum(s.device_phase_s is not None for s in prof.session().steps)
        syncs_in_loop = CountingEvent.calls + torch_syncs[0]
        session = prof.stop()
    finally:
        torch.cuda.synchronize = real_sync  # type: ignore[assignment]
    outer1.synchronize()
    timer = getattr(prof.recorder, "_timer")
    summary = throughput.summarize(prof)
    busy = sum(s.device_busy_s or 0.0 for s in session.steps)
    return {
        "steps": steps, "syncs_in_loop": syncs_in_loop, "timer_synchronize_calls": timer.synchronize_calls,
        "event_synchronize_calls": CountingEvent.calls, "resolved_during_run": resolved_in_run,
        "resolved_after_stop": sum(s.device_phase_s is not None for s in session.steps),
        "phases": {p.phase: {"host_mean_s": p.mean_s, "device_mean_s": p.device_mean_s} for p in summary.phases},
        "device_busy_s": busy, "outer_elapsed_s": outer0.elapsed_time(outer1) / 1e3,
    }


def _train_step(prof: Any, model: Any, opt: Any, x: Any) -> None:
    with prof.phase("forward"):
        loss = model(x).float().pow(2).mean()
    with prof.phase("backward"):
        loss.backward()
    with prof.phase("optimizer"):
        opt.step()
        opt.zero_grad(set_to_none=True)
    prof.step(loss=loss)


def check_mfu_and_nvml(steps: int = 60, width: int = 8192, tokens: int = 8192) -> dict[str, Any]:
    """MFU of a bf16 MLP (FLOPs counted with FlopCounterMode) with NVML sampling during the run."""
    import torch
    from throughput.analysis.telemetry import telemetry_summary
    from throughput.telemetry.flops import count_flops, set_flops_per_step
    from throughput.capture.profiler import Profiler
    from throughput.telemetry import TelemetryController

    model, x = _mlp(width, 4), torch.randn(tokens, width, device="cuda", dtype=torch.bfloat16)
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    flops, _ = count_flops(lambda: model(x).float().pow(2).mean().backward())
    opt.zero_grad(set_to_none=True)
    prof = Profiler(device="cuda", warmup_steps=5, telemetry=TelemetryController(interval_s=0.1, host=False))
    set_flops_per_step(prof, flops, dtype="bf16")
    with prof:
        for _ in range(steps):
            _train_step(prof, model, opt, x)
    summary = throughput.summarize(prof)
    tel = telemetry_summary(prof.session())
    gpu = {f"{m.source} {m.metric}": {"mean": m.mean, "max": m.max} for m in tel.gpu}
    return {"device_name": summary.device_name, "flops_per_step": flops,
            "hand_flops_per_step": 2 * tokens * width * width * (3 * 4 - 1),  # layer 1 has no grad input
            "mfu": summary.mfu.value if summary.mfu else None, "mfu_reason": summary.mfu.reason if summary.mfu else "",
            "peak_flops": summary.mfu.peak_flops_per_s if summary.mfu else None,
            "achieved_flops_per_s": summary.mfu.achieved_flops_per_s if summary.mfu else None,
            "nvml": gpu, "throttling": list(tel.throttling), "notes": list(summary.notes)}


def run_cuda_tests(timeout_s: int = 240) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"],
                         capture_output=True, text=True, timeout=timeout_s)
    last = [ln for ln in out.stdout.splitlines() if ln.strip()][-1:] or ["no output"]
    return {"returncode": out.returncode, "result": last[0], "seconds": time.perf_counter() - t0,
            "failures": out.stdout[-4000:] if out.returncode not in (0, 5) else ""}


def _table(ev: dict[str, Any], mf: dict[str, Any], tests: dict[str, Any]) -> list[list[str]]:
    util = mf["nvml"].get("gpu0 gpu_util_pct", {}).get("mean")
    power = mf["nvml"].get("gpu0 power_w", {}).get("max")
    clock = mf["nvml"].get("gpu0 sm_clock_mhz", {}).get("mean")
    fwd = ev["phases"].get("forward", {})
    mfu = f"{mf['mfu']:.1%}" if mf["mfu"] is not None else f"- ({mf['mfu_reason']})"
    return [
        ["synchronize calls in the step loop", str(ev["syncs_in_loop"]), "0"],
        ["DeviceTimer.synchronize_calls per run", str(ev["timer_synchronize_calls"]), "1"],
        ["steps resolved during run / after stop", f"{ev['resolved_during_run']} / {ev['resolved_after_stop']}",
         f"most / {ev['steps']}"],
        ["forward host vs device mean", f"{fwd.get('host_mean_s', 0) * 1e3:.3f} ms vs "
         f"{(fwd.get('device_mean_s') or 0) * 1e3:.3f} ms", "host < device"],
        ["device busy vs outer elapsed", f"{ev['device_busy_s']:.3f} s vs {ev['outer_elapsed_s']:.3f} s", "busy <= elapsed"],
        ["FLOPs/step counted vs hand", f"{mf['flops_per_step']:.3e} vs {mf['hand_flops_per_step']:.3e}", "equal"],
        [f"MFU bf16 on {mf['device_name']}", mfu, "0 < MFU <= 100%"],
        ["NVML util mean / power max / SM clock", f"{util}% / {power} W / {clock} MHz", "readings present"],
        ["pytest -m cuda", tests["result"], "passed"],
    ]


def run(quick: bool = False) -> dict[str, Any]:
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if not has_cuda:
        print("gpu_check: no CUDA device here; nothing to check (run it on a GPU machine)")
        return {"skipped": "no CUDA device"}
    ev = check_events_and_phases(steps=20 if quick else 40)
    mf = check_mfu_and_nvml(steps=30 if quick else 60)
    tests = run_cuda_tests()
    rows = _table(ev, mf, tests)
    text = tabulate(rows, headers=["check", "measured", "expected"], tablefmt="github", disable_numparse=True)
    print(text)
    data = {"machine": machine(), "events": ev, "mfu_nvml": mf, "cuda_tests": tests}
    write_report("gpu_check", f"# GPU check\n\n{mf['device_name']}, {machine()['date_utc']} UTC\n\n{text}\n", data)
    return data


if __name__ == "__main__":
    main(run, __doc__)
