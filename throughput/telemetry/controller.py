"""Sampler threads and the controller that starts and stops them with a Profiler.

A ``TelemetryController`` is passed as ``Profiler(telemetry=...)``: ``Profiler.start`` calls
``start(prof)`` and ``Profiler.stop`` calls ``stop(prof)``, which joins every thread, reaps py-spy,
and hands samples, notes and artifacts to the profiler. Sample times are readings of the profiler's
clock, so they line up with the phase spans.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Protocol

from throughput.session.records import TelemetrySample
from throughput.timing.clock import Clock

DEFAULT_INTERVAL_S = 0.5
JOIN_TIMEOUT_S = 5.0


class Sampler(Protocol):
    """Reads metrics once per call. ``available`` False means it only contributes ``note``."""

    name: str
    available: bool
    note: str

    def sample(self, now_s: float) -> list[TelemetrySample]: ...
    def close(self) -> None: ...


class SamplerThread:
    """Calls ``sampler.sample`` every ``interval_s`` on a daemon thread until ``stop()``. With a ``sink``
    (the profiler's bounded store) samples go there as they are taken; without one they are kept in a
    list that ``stop()`` returns (for short uses: it grows with the run)."""

    def __init__(self, sampler: Sampler, clock: Clock, interval_s: float = DEFAULT_INTERVAL_S,
                 sink: Callable[[list[TelemetrySample]], None] | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.sampler = sampler
        self._clock = clock
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._samples: list[TelemetrySample] = []
        self._sink = sink
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._loop, name=f"throughput-{sampler.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._take()
            if self._stop.wait(self._interval_s):
                break
        self._take()  # a last reading at the end of the run

    def _take(self) -> None:
        try:
            samples = self.sampler.sample(self._clock.now_s())
            if self._sink is not None:
                self._sink(samples)
            else:
                self._samples.extend(samples)
        except Exception as e:  # telemetry must never break the run; say what went wrong once
            if not self.errors:
                self.errors.append(f"{self.sampler.name} sampler failed: {type(e).__name__}: {e}")

    def stop(self) -> list[TelemetrySample]:
        """Stop and join the thread (bounded wait); return every sample taken."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_TIMEOUT_S)
        try:
            self.sampler.close()
        except Exception:
            pass
        return list(self._samples)


class TelemetryController:
    """Starts the chosen samplers (and py-spy) with a Profiler and collects their results at stop.

    Args:
        interval_s: seconds between samples.
        nvml: sample GPUs through NVML (a note says so when NVML or a GPU is missing).
        host: sample CPU% and RSS of this process and its child processes (DataLoader workers).
        py_spy_dir: when given, run ``py-spy record`` on this process tree and write the profile there.
        py_spy_rate: py-spy samples per second.
        gpu_indices: NVML indices to sample; default all GPUs, or under torchrun the rank's own
            (LOCAL_RANK) when CUDA_VISIBLE_DEVICES is not set.
        count_flops_at_step: count this step's FLOPs with FlopCounterMode, for MFU (pick a
            warm-up step: counting slows it); None: do not count.
        dtype: the compute dtype, for the MFU peak.
    """

    def __init__(self, *, interval_s: float = DEFAULT_INTERVAL_S, nvml: bool = True, host: bool = True,
                 py_spy_dir: str | Path | None = None, py_spy_rate: int = 100,
                 gpu_indices: tuple[int, ...] | None = None, count_flops_at_step: int | None = None,
                 dtype: str = "fp32", flops_per_step: float | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        if py_spy_rate <= 0:
            raise ValueError(f"py_spy_rate must be > 0, got {py_spy_rate}")
        self.interval_s = interval_s
        self._want_nvml, self._want_host = nvml, host
        self._py_spy_dir = Path(py_spy_dir) if py_spy_dir is not None else None
        self._py_spy_rate = py_spy_rate
        self._gpu_indices = gpu_indices
        self._threads: list[SamplerThread] = []
        self._py_spy: Any = None
        self._notes: list[str] = []
        self._flops: Any = None
        if flops_per_step is not None and not flops_per_step > 0:
            raise ValueError(f"flops_per_step must be > 0, got {flops_per_step}")
        self._flops_per_step, self._dtype = flops_per_step, dtype
        if count_flops_at_step is not None:
            from throughput.telemetry.flops import StepFlopCounter
            self._flops = StepFlopCounter(count_flops_at_step, dtype)

    @property
    def samples_stacks(self) -> bool:
        """True when py-spy samples this process's Python stacks: the profiler then keeps a Python frame
        on the stack while it waits for a batch (``Recorder.iterate_py``), by which the samples of the
        training loop are told from those before and after it."""
        return self._py_spy_dir is not None

    def on_step(self, prof: Any, index: int) -> None:
        """Called by ``Profiler.step`` after each step closes."""
        if self._flops is not None:
            self._flops.on_step(prof, index)

    def start(self, prof: Any) -> None:
        """Start sampling now (called by ``Profiler.start``)."""
        import os
        samplers: list[Sampler] = []
        if self._want_nvml:
            from throughput.telemetry.nvml import NvmlSampler
            samplers.append(NvmlSampler(self._gpu_indices if self._gpu_indices is not None else _rank_gpu()))
        if self._py_spy_dir is not None:
            from throughput.telemetry.pyspy import PySpy
            self._py_spy = PySpy(self._py_spy_dir, rate=self._py_spy_rate)
            self._py_spy.start(os.getpid())
        if self._want_host:
            from throughput.telemetry.host import HostSampler
            exclude = {self._py_spy.pid} if self._py_spy is not None and self._py_spy.pid else set()
            samplers.append(HostSampler(os.getpid(), exclude_pids=exclude))
        if self._flops_per_step is not None:   # given by the user: record it (and the CPU peak) for MFU
            from throughput.telemetry.flops import set_flops_per_step
            set_flops_per_step(prof, self._flops_per_step, self._dtype)
        if self._flops is not None and self._flops.at_step == 0:
            self._flops.begin()
        for s in samplers:
            if not s.available:
                self._notes.append(s.note)
                s.close()
                continue
            thread = SamplerThread(s, prof.clock, self.interval_s, sink=prof.add_telemetry)
            thread.start()
            self._threads.append(thread)

    def stop(self, prof: Any) -> None:
        """Stop and join every thread, stop py-spy; give samples, notes, artifacts to ``prof``."""
        if self._flops is not None:
            self._flops.close(prof)
        threads, self._threads = self._threads, []
        for t in threads:
            prof.add_telemetry(t.stop())
            self._notes.extend(t.errors)
        if self._py_spy is not None:
            spy, self._py_spy = self._py_spy, None
            spy.stop()
            spy.report_to(prof)
        for note in self._notes:
            prof.add_note(note)
        self._notes = []


def _rank_gpu() -> tuple[int, ...] | None:
    """Under torchrun each rank samples only its own GPU (index LOCAL_RANK) when CUDA_VISIBLE_DEVICES
    does not remap indices; otherwise every GPU (None)."""
    import os
    if "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1 \
            and "CUDA_VISIBLE_DEVICES" not in os.environ:
        return (int(os.environ["LOCAL_RANK"]),)
    return None
