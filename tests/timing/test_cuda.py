"""CUDA path on CPU with a fake event class: no synchronize per step, one at the end."""

from __future__ import annotations

import throughput
import pytest

from tests.timing.fake_cuda import FakeDevice
from throughput.capture.profiler import Profiler
from throughput.timing.clock import FakeClock


def _step(prof: Profiler, clock: FakeClock, dev: FakeDevice, host_s: float, device_s: float) -> None:
    """A forward whose device work takes device_s while the host spends host_s launching it."""
    with prof.phase("forward"):
        clock.advance(host_s)
        dev.clock_s += device_s
    prof.step()


def test_events_resolve_without_per_step_synchronize() -> None:
    clock, dev = FakeClock(), FakeDevice()
    prof = Profiler(clock=clock, event_factory=dev.factory, warmup_steps=0)
    for _ in range(5):
        _step(prof, clock, dev, host_s=0.001, device_s=0.004)
        dev.progress_s = dev.clock_s - 0.004      # the device lags one step behind the host
    assert dev.synchronize_calls == 0
    session = prof.stop()
    assert dev.synchronize_calls == 1             # the single end-of-run sync
    device_fwd = [s.device_phase_s["forward"] for s in session.steps if s.device_phase_s]
    assert len(device_fwd) == 5
    assert device_fwd == pytest.approx([0.004] * 5)   # event pair difference = device_s
    assert [s.phase_s["forward"] for s in session.steps] == pytest.approx([0.001] * 5)


def test_nested_device_time_is_exclusive_and_busy_is_outermost() -> None:
    clock, dev = FakeClock(), FakeDevice()
    prof = Profiler(clock=clock, event_factory=dev.factory, warmup_steps=0)
    with prof.phase("forward"):
        dev.clock_s += 0.002                       # forward's own work
        with prof.phase("attention"):
            dev.clock_s += 0.003                   # attention work
    with prof.phase("backward"):
        dev.clock_s += 0.005
    clock.advance(0.02)
    prof.step()
    session = prof.stop()
    (step,) = session.steps
    assert step.device_phase_s == pytest.approx({"forward": 0.002, "attention": 0.003, "backward": 0.005})
    assert step.device_busy_s == pytest.approx(0.010)     # 0.005 (forward incl.) + 0.005 (backward)


def test_summary_reports_gpu_idle() -> None:
    clock, dev = FakeClock(), FakeDevice()
    prof = Profiler(clock=clock, event_factory=dev.factory, warmup_steps=0)
    for _ in range(4):
        _step(prof, clock, dev, host_s=0.010, device_s=0.004)   # 10 ms step, 4 ms of device work
    prof.stop()
    rates = throughput.summarize(prof).rates
    assert rates.device_busy_share == pytest.approx(0.4)        # 4 / 10
    assert rates.gpu_idle_s_per_step == pytest.approx(0.006)    # 10 - 4 ms


@pytest.mark.cuda
def test_real_cuda_events_time_a_matmul() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    prof = Profiler(device="cuda", warmup_steps=1)
    x = torch.randn(4096, 4096, device="cuda")
    for _ in range(4):
        with prof.phase("forward"):
            y = x @ x
        prof.step()
    session = prof.stop()
    del y
    assert all(s.device_phase_s is not None and s.device_phase_s["forward"] > 0 for s in session.steps)
