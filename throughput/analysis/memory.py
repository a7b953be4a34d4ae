"""Memory per phase and for the run, from the ``memory_*`` events of the view window. Pure.

On CUDA, ``method`` "peak" means each phase's figure is the allocator's peak while that phase was
innermost (reset-and-read at its boundaries); "sampled" means the largest value read at the phase's
boundaries (current bytes, nothing reset). On CPU the figure is the RSS read at the boundaries.
Headroom is the device's total memory not reserved by PyTorch's allocator at its peak.
"""

from __future__ import annotations

from dataclasses import dataclass

from throughput.analysis.breakdown import phase_order
from throughput.session.session import Session


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseMemoryStats:
    phase: str
    allocated_bytes: int | None    # CUDA: tensors allocated
    reserved_bytes: int | None     # CUDA: held by the caching allocator
    rss_bytes: int | None          # CPU: resident set size of the process
    readings: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemorySummary:
    method: str                                  # "peak" or "sampled"
    phases: tuple[PhaseMemoryStats, ...]
    peak_allocated_bytes: int | None = None      # CUDA, whole run
    peak_reserved_bytes: int | None = None
    device_total_bytes: int | None = None
    alloc_retries: int | None = None             # cudaMalloc failures the allocator retried after freeing cache
    ooms: int | None = None

    @property
    def headroom_share(self) -> float | None:
        """Share of the device's memory left at the allocator's peak (0..1), None when unknown."""
        if not self.device_total_bytes or self.peak_reserved_bytes is None:
            return None
        return max(0.0, 1.0 - self.peak_reserved_bytes / self.device_total_bytes)


def memory_summary(session: Session) -> MemorySummary | None:
    """None when the run recorded no memory window."""
    phases = [e.detail for e in session.events if e.kind == "memory_phase"]
    run = next((e.detail for e in session.events if e.kind == "memory_run"), None)
    if not phases and run is None:
        return None
    by_name = {str(d["phase"]): d for d in phases}
    stats = tuple(PhaseMemoryStats(phase=name, allocated_bytes=_int(by_name[name].get("allocated_bytes")),
                                   reserved_bytes=_int(by_name[name].get("reserved_bytes")),
                                   rss_bytes=_int(by_name[name].get("rss_bytes")),
                                   readings=int(by_name[name].get("readings", 0)))
                  for name in phase_order(set(by_name)))
    run = run or {}
    method = str(run.get("method") or (phases[0].get("method") if phases else "sampled"))
    return MemorySummary(method=method, phases=stats, peak_allocated_bytes=_int(run.get("peak_allocated_bytes")),
                         peak_reserved_bytes=_int(run.get("peak_reserved_bytes")),
                         device_total_bytes=_int(run.get("device_total_bytes")),
                         alloc_retries=_int(run.get("alloc_retries")), ooms=_int(run.get("ooms")))


def step_memory(session: Session) -> dict[int, dict[str, int]]:
    """Per window step: the largest bytes read at its phase boundaries (``allocated_bytes``, ...)."""
    out: dict[int, dict[str, int]] = {}
    for e in session.events:
        if e.kind == "memory_step":
            out[int(e.detail["step"])] = {k: int(v) for k, v in e.detail.items() if k != "step"}
    return out


def _int(value: object) -> int | None:
    return None if value is None else int(value)   # type: ignore[call-overload]  # detail values are numbers


# telemetry (source, metric) pairs drawn on the memory timeline, and their labels
_TIMELINE = {("main", "rss_bytes"): "main process RSS", ("window", "rss_bytes"): "RSS at phase boundaries",
             ("window", "allocated_bytes"): "CUDA allocated (phase boundaries)",
             ("window", "reserved_bytes"): "CUDA reserved (phase boundaries)"}


def memory_timeline(session: Session) -> dict[str, list[tuple[float, float]]]:
    """Label -> (seconds since the first step started, bytes) points: the host sampler's RSS of the main
    process and of all loader workers together, NVML's used memory per GPU, and the view window's
    boundary readings. Empty when there is nothing to draw."""
    if not session.steps:
        return {}
    t0 = session.steps[0].start_s
    out: dict[str, list[tuple[float, float]]] = {}
    workers: dict[float, float] = {}
    for t in session.telemetry:
        label = _TIMELINE.get((t.source, t.metric))
        if label is None and t.metric == "mem_used_bytes" and t.source.startswith("gpu"):
            label = f"{t.source} used (NVML)"
        if t.source.startswith("worker:") and t.metric == "rss_bytes":
            workers[t.time_s] = workers.get(t.time_s, 0.0) + t.value   # one sampler pass shares a time
        elif label is not None:
            out.setdefault(label, []).append((t.time_s - t0, t.value))
    if workers:
        out["loader workers RSS (sum)"] = [(t - t0, v) for t, v in sorted(workers.items())]
    return out
