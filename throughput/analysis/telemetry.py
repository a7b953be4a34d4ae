"""Telemetry and py-spy results of a session, summarized for the report. Pure: no I/O."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from throughput.analysis.hotspots import HotFunction
from throughput.hardware import throttle_names
from throughput.session.records import COUNTER_METRICS
from throughput.session.session import Session


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricStats:
    """One metric of one source (``gpu0``, ``main``, ``worker:<pid>``) over the run."""

    source: str
    metric: str
    count: int
    mean: float
    max: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PySpyWindow:
    loop_found: bool     # False: the main thread showed no phase frame, so nothing was left out
    before_s: float      # main-thread samples before the first step (left out of the tables)
    after_s: float       # and after the last
    profile: str         # the speedscope file (everything, including what the tables leave out)


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetrySummary:
    gpu: tuple[MetricStats, ...]
    host: tuple[MetricStats, ...]
    throttling: tuple[str, ...]          # slowdown reasons seen in any GPU sample
    hot_functions: tuple[HotFunction, ...]
    pyspy: PySpyWindow | None = None     # what the py-spy tables left out, and where the profile is


def metric_stats(session: Session) -> tuple[MetricStats, ...]:
    """Mean and max per (source, metric) over every sample (the totals of a bounded capture, else the
    samples), sorted by source then metric; cumulative counters left out."""
    if session.retention is not None and session.retention.telemetry_totals:
        return tuple(
            MetricStats(source=t.source, metric=t.metric, count=t.count, mean=t.total / t.count, max=t.max)
            for t in sorted(session.retention.telemetry_totals, key=lambda t: (t.source, t.metric))
            if t.metric not in COUNTER_METRICS and t.count
        )
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for t in session.telemetry:
        if t.metric in COUNTER_METRICS:
            continue
        groups[(t.source, t.metric)].append(t.value)
    return tuple(
        MetricStats(source=src, metric=metric, count=len(v), mean=math.fsum(v) / len(v), max=max(v))
        for (src, metric), v in sorted(groups.items())
    )


def hot_functions_of(session: Session) -> tuple[HotFunction, ...]:
    """The py-spy hot functions recorded as ``pyspy_hot`` events at capture."""
    out = []
    for e in session.events:
        if e.kind != "pyspy_hot":
            continue
        d = e.detail
        out.append(HotFunction(role=str(d["role"]), function=str(d["function"]), file=str(d["file"]),
                               line=int(d["line"]), own_s=float(d["own_s"]), share=float(d["share"]),
                               processes=int(d["processes"]), idle=bool(d.get("idle", False))))
    return tuple(out)


def pyspy_window_of(session: Session) -> PySpyWindow | None:
    event = next((e for e in session.events if e.kind == "pyspy_window"), None)
    if event is None:
        return None
    d = event.detail
    return PySpyWindow(loop_found=bool(d["loop_found"]), before_s=float(d["before_s"]), after_s=float(d["after_s"]),
                       profile=str(d["profile"]))


def telemetry_summary(session: Session) -> TelemetrySummary:
    stats = metric_stats(session)
    masks = {int(t.value) for t in session.telemetry if t.metric == "throttle_reasons"}
    if session.retention is not None:   # every distinct mask seen, kept sample or not
        masks |= {int(v) for t in session.retention.telemetry_totals if t.metric == "throttle_reasons"
                  for v in t.distinct}
    reasons = sorted({name for m in masks for name in throttle_names(m)})
    return TelemetrySummary(
        gpu=tuple(s for s in stats if s.source.startswith("gpu") and s.metric != "throttle_reasons"),
        # "window": memory read at the view window's phase boundaries (capture/memory.py), drawn on the
        # memory timeline and tabled per phase; not a sampler's reading
        host=tuple(s for s in stats if not s.source.startswith("gpu") and s.source != "window"),
        throttling=tuple(reasons), hot_functions=hot_functions_of(session), pyspy=pyspy_window_of(session),
    )
