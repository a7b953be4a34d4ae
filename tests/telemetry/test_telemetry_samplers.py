"""NVML and host samplers, the controller's lifecycle inside a Profiler, with real DataLoader workers."""

from __future__ import annotations

import os
import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from throughput.capture.profiler import Profiler
from throughput.session.records import TelemetrySample
from throughput.telemetry import SamplerThread, TelemetryController
from throughput.telemetry.host import HostSampler, child_pids, read_cpu_ticks, read_rss_bytes
from throughput.telemetry.nvml import NvmlSampler
from throughput.timing.clock import FakeClock, PerfCounterClock


class SlowSquares(Dataset[torch.Tensor]):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> torch.Tensor:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.004:   # keep the worker busy so its CPU% is visible
            pass
        return torch.full((4,), float(i))


def test_nvml_without_gpu_is_unavailable_and_does_not_raise() -> None:
    sampler = NvmlSampler()
    try:
        if sampler.available:
            pytest.skip("a GPU with NVML is present: covered by the cuda tests")
        assert "GPU telemetry not available" in sampler.note
    finally:
        sampler.close()


def test_host_reads_this_process() -> None:
    pid = os.getpid()
    ticks, rss = read_cpu_ticks(pid), read_rss_bytes(pid)
    assert ticks is not None and ticks >= 0
    # this interpreter with torch imported holds well over 10 MiB resident
    assert rss is not None and rss > 10 * 2**20
    assert read_cpu_ticks(2**22 + 12345) is None   # no such pid


def test_host_cpu_percent_of_a_busy_loop() -> None:
    sampler = HostSampler()
    clock = PerfCounterClock()
    first = sampler.sample(clock.now_s())
    # CPU% needs two readings; the cumulative counters need one
    assert {s.metric for s in first} == {"rss_bytes", "minor_faults_total", "user_cpu_total_s",
                                         "system_cpu_total_s"}
    cpu0, wall0 = time.process_time(), clock.now_s()
    while time.process_time() - cpu0 < 0.5:   # 0.5 s of CPU however long a busy machine makes it take
        pass
    second = [s for s in sampler.sample(clock.now_s()) if s.source == "main" and s.metric == "cpu_pct"]
    expected = 100.0 * (time.process_time() - cpu0) / (clock.now_s() - wall0)
    # /proc counts 10 ms ticks: +-0.04 s of CPU over a window of >= 0.5 s; a shared machine may give
    # the spin less than a whole core, so compare with this process's own CPU clock, not with 100%
    assert len(second) == 1 and second[0].value == pytest.approx(expected, abs=10.0)


class _Counting:
    name, available, note = "counting", True, ""

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False

    def sample(self, now_s: float) -> list[TelemetrySample]:
        self.calls += 1
        return [TelemetrySample(time_s=now_s, source="x", metric="calls", value=float(self.calls))]

    def close(self) -> None:
        self.closed = True


def test_sampler_thread_samples_until_stopped_and_closes() -> None:
    sampler = _Counting()
    thread = SamplerThread(sampler, FakeClock(5.0), interval_s=0.01)
    thread.start()
    deadline = time.monotonic() + 60          # a busy machine may not schedule the thread for a while
    while sampler.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    samples = thread.stop()
    assert sampler.closed
    # samples while running (waited for 3) plus the final one taken by stop()
    assert len(samples) >= 4
    assert [s.value for s in samples] == [float(i) for i in range(1, len(samples) + 1)]
    assert all(s.time_s == 5.0 for s in samples)   # readings of the injected clock


def _children() -> set[int]:
    import os
    pids: set[int] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
            pids.update(int(p) for p in f.read().split())
    return pids


def test_controller_in_profiler_sees_loader_workers() -> None:
    # children that exist before the run (another test's process still being reaped) are not ours
    before = {f"worker:{pid}" for pid in _children()}
    controller = TelemetryController(interval_s=0.05, nvml=True, host=True)
    prof = Profiler(device="cpu", warmup_steps=0, telemetry=controller)
    loader = DataLoader(SlowSquares(), batch_size=8, num_workers=2)
    with prof:
        for batch in prof.iter(loader):
            with prof.phase("forward"):
                batch.sum()
            prof.step()
    session = prof.session()
    sources = {t.source for t in session.telemetry}
    assert "main" in sources
    workers = {s for s in sources if s.startswith("worker:")} - before
    assert len(workers) == 2, sources                       # num_workers=2
    worker_cpu = [t.value for t in session.telemetry if t.source in workers and t.metric == "cpu_pct"]
    assert worker_cpu and max(worker_cpu) > 0
    origin = session.info.origin_s
    assert all(t.time_s >= origin for t in session.telemetry)  # on the profiler's clock
    assert any("GPU telemetry not available" in n for n in session.info.notes) or any(
        s.startswith("gpu") for s in sources)
    del loader


def test_telemetry_stopped_when_the_run_raises() -> None:
    controller = TelemetryController(interval_s=0.01, nvml=False, host=True)
    prof = Profiler(device="cpu", telemetry=controller)
    with pytest.raises(RuntimeError, match="boom"):
        with prof:
            with prof.phase("forward"):
                raise RuntimeError("boom")
    assert prof.session().info.end.value == "exception"
    # the autouse fixture checks that the sampler thread is gone


def test_controller_validates() -> None:
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        TelemetryController(interval_s=0)
