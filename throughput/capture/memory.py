"""Memory per phase, read at the phase boundaries of a few window steps (never per step of the run).

Readers:

- ``CudaAllocatorReader``: the caching allocator's statistics through ``torch.cuda`` (host-side reads,
  no synchronize). With ``reset_peaks`` each reading is the *peak* allocated and reserved bytes since
  the previous boundary, and the peak statistics are reset after it (reset-and-read); that changes
  what the script's own ``torch.cuda.max_memory_allocated()`` returns afterwards, so it is only done
  in an explicitly requested window (``--ops``/``--memory-snapshot``). Without it each reading is the
  current allocated and reserved bytes at the boundary, and nothing is changed.
- ``RssReader``: the process's resident set size from ``/proc/self/statm`` (one ``pread`` on a file
  kept open, about 1.5 us), current at the boundary. Peak RSS is not reset: resetting it
  (``/proc/self/clear_refs``) would change the script's own ``getrusage`` readings.

``PhaseMemory`` is the boundary observer: each reading describes the interval that just ended, so it
is attributed to the phase that was innermost during that interval (``other`` between phases). What it
keeps is capped: one maximum per phase name, one per window step, and at most ``MAX_TIMELINE``
boundary readings for the timeline plot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from throughput.session.records import Event, TelemetrySample

MAX_TIMELINE = 4096          # boundary readings kept for the timeline plot (window steps only)
TIMELINE_SOURCE = "window"   # telemetry source name of the boundary readings


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryReading:
    """Bytes at (or, for peaks, since the previous) boundary; None where the reader has no such figure."""

    allocated_bytes: int | None = None
    reserved_bytes: int | None = None
    rss_bytes: int | None = None


class MemoryReader(Protocol):
    method: str                      # "peak" (reset-and-read) or "sampled" (current value at boundaries)

    def read(self) -> MemoryReading: ...
    def run_stats(self) -> dict[str, float | int | str]: ...
    def close(self) -> None: ...


class CudaAllocatorReader:
    """Allocated/reserved bytes of one CUDA device from the caching allocator (``allocator`` is the
    ``torch.cuda`` module, or a fake with ``memory_stats``, ``reset_peak_memory_stats``, ``mem_get_info``)."""

    def __init__(self, allocator: Any = None, device: int = 0, reset_peaks: bool = False) -> None:
        if allocator is None:
            import torch
            allocator = torch.cuda
        self._cuda = allocator
        self._device = device
        self._reset = reset_peaks
        self.method = "peak" if reset_peaks else "sampled"
        self._window_peak_allocated = 0
        self._window_peak_reserved = 0

    def read(self) -> MemoryReading:
        stats = self._cuda.memory_stats(self._device)
        if not self._reset:
            return MemoryReading(allocated_bytes=int(stats.get("allocated_bytes.all.current", 0)),
                                 reserved_bytes=int(stats.get("reserved_bytes.all.current", 0)))
        allocated = int(stats.get("allocated_bytes.all.peak", 0))
        reserved = int(stats.get("reserved_bytes.all.peak", 0))
        self._window_peak_allocated = max(self._window_peak_allocated, allocated)
        self._window_peak_reserved = max(self._window_peak_reserved, reserved)
        self._cuda.reset_peak_memory_stats(self._device)   # host-side: no device synchronize
        return MemoryReading(allocated_bytes=allocated, reserved_bytes=reserved)

    def run_stats(self) -> dict[str, float | int | str]:
        """Whole-run figures: peaks (the larger of the allocator's and the window's, since resets in
        the window lower the allocator's), allocator retries and OOMs, and the device's total memory."""
        stats = self._cuda.memory_stats(self._device)
        out: dict[str, float | int | str] = {
            "method": self.method,
            "peak_allocated_bytes": max(int(stats.get("allocated_bytes.all.peak", 0)), self._window_peak_allocated),
            "peak_reserved_bytes": max(int(stats.get("reserved_bytes.all.peak", 0)), self._window_peak_reserved),
            "alloc_retries": int(stats.get("num_alloc_retries", 0)),
            "ooms": int(stats.get("num_ooms", 0)),
        }
        try:
            out["device_total_bytes"] = int(self._cuda.mem_get_info(self._device)[1])
        except Exception:   # no total: headroom is not reported
            pass
        return out

    def close(self) -> None:
        pass


class RssReader:
    """Current resident set size of this process (``/proc/self/statm``, Linux)."""

    method = "sampled"

    def __init__(self, statm: str = "/proc/self/statm") -> None:
        self._fd = os.open(statm, os.O_RDONLY)
        self._page_bytes = os.sysconf("SC_PAGE_SIZE")

    def read(self) -> MemoryReading:
        return MemoryReading(rss_bytes=int(os.pread(self._fd, 128, 0).split()[1]) * self._page_bytes)

    def run_stats(self) -> dict[str, float | int | str]:
        return {"method": self.method}

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def default_reader(device: str, reset_peaks: bool) -> MemoryReader | None:
    """The reader for ``device`` ("cuda" or "cpu"), or None where none works here (no /proc)."""
    if device == "cuda":
        import torch
        return CudaAllocatorReader(torch.cuda, torch.cuda.current_device(), reset_peaks)
    try:
        return RssReader()
    except OSError:
        return None


_FIELDS = ("allocated_bytes", "reserved_bytes", "rss_bytes")


class PhaseMemory:
    """A ``BoundaryObserver`` that reads memory at every phase boundary and keeps capped maxima."""

    def __init__(self, reader: MemoryReader) -> None:
        self.reader = reader
        self._stack: list[str] = []
        self.step = -1                                          # set by the window at each step
        self.by_phase: dict[str, dict[str, int]] = {}           # phase -> field -> max bytes
        self.readings_by_phase: dict[str, int] = {}
        self.by_step: dict[int, dict[str, int]] = {}            # window steps only
        self.timeline: list[tuple[float, MemoryReading]] = []   # capped at MAX_TIMELINE

    def opened(self, phase: str, now_s: float) -> None:
        self._take(now_s)
        self._stack.append(phase)

    def closed(self, phase: str, now_s: float) -> None:
        self._take(now_s)
        if self._stack:
            self._stack.pop()

    def _take(self, now_s: float) -> None:
        reading = self.reader.read()
        phase = self._stack[-1] if self._stack else "other"
        _raise_max(self.by_phase.setdefault(phase, {}), reading)
        self.readings_by_phase[phase] = self.readings_by_phase.get(phase, 0) + 1
        if self.step >= 0:
            _raise_max(self.by_step.setdefault(self.step, {}), reading)
        if len(self.timeline) < MAX_TIMELINE:
            self.timeline.append((now_s, reading))

    def events(self) -> list[Event]:
        """What was seen, as session events: one per phase, one per window step, one for the run."""
        out = [Event(kind="memory_phase", step=-1, message=f"memory in phase {phase}",
                     detail={"phase": phase, "method": self.reader.method,
                             "readings": self.readings_by_phase.get(phase, 0), **values})
               for phase, values in self.by_phase.items()]
        out += [Event(kind="memory_step", step=step, message=f"memory in step {step}", detail={"step": step, **values})
                for step, values in sorted(self.by_step.items())]
        out.append(Event(kind="memory_run", step=-1, message="memory of the run", detail=self.reader.run_stats()))
        return out

    def samples(self) -> list[TelemetrySample]:
        return [TelemetrySample(time_s=t, source=TIMELINE_SOURCE, metric=name, value=float(value))
                for t, reading in self.timeline for name in _FIELDS
                if (value := getattr(reading, name)) is not None]


def _raise_max(target: dict[str, int], reading: MemoryReading) -> None:
    for name in _FIELDS:
        value = getattr(reading, name)
        if value is not None and value > target.get(name, -1):
            target[name] = value
