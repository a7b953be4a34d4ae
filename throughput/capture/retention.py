"""Which finished steps the recorder keeps in full, and the running totals of all of them.

A finished step arrives as a plain tuple (``StepTuple``, in index order). It always goes into the
totals (``session.accumulate``); it is kept in full when it is a warm-up step, one of the last
``recent_steps`` (a ring), one of the ``slowest_steps`` measured ones (a heap), or on the thinning
grid: every ``stride``-th step, the stride doubling (and every other kept step dropped) whenever more
than ``sampled_steps`` would be kept. Memory is bounded by the policy, whatever the run's length.
Per step: a comparison or two and an append, besides the totals' appends.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections import deque
from typing import Any, Iterable

from throughput.session.accumulate import LossAccumulator, StepAccumulator
from throughput.session.records import Event, TelemetrySample
from throughput.session.retention import (MAX_DISTINCT, LossTotals, MetricTotals, RetentionPolicy, SpanTotals,
                                          StepTotals)

# (index, start_s, end_s, ((phase, s), ...), meta fields, loss or None, spans, device phases or None, busy or None)
# meta fields: (samples, tokens, padding_tokens, micro_steps, grad_norm, peak_memory_bytes)
# spans: ((phase, start_s, end_s, depth, device_s or None), ...)
StepTuple = tuple[Any, ...]


class StepRetention:
    """Bounded per-step detail plus exact totals (see the module docstring). Not thread-safe: the
    recorder calls it under its drain lock."""

    def __init__(self, policy: RetentionPolicy, warmup_steps: int) -> None:
        self.policy = policy
        self.warmup_steps = warmup_steps
        self.warm: list[StepTuple] = []
        self.recent: deque[StepTuple] = deque(maxlen=policy.recent_steps)
        self.slowest: list[tuple[float, int, StepTuple]] = []
        self.sampled: dict[int, StepTuple] = {}
        self.stride = 1
        self.totals = StepAccumulator(warmup_steps)
        self.losses = LossAccumulator()
        self.seen = 0
        self.spans_seen = 0
        self.span_totals: dict[tuple[str, int], list[float]] = {}   # (phase, depth) -> [count, total, max]

    def add(self, step: StepTuple) -> None:
        index, start_s, end_s = step[0], step[1], step[2]
        self.seen += 1
        if step[5] is not None:
            self.losses.add(index, step[5])
        if index < self.warmup_steps:
            self.warm.append(step)
            return
        meta = step[4]
        self.totals.add(start_s, end_s, dict(step[3]), meta[0], meta[1], meta[2], meta[3],
                        dict(step[7]) if step[7] is not None else None, step[8], meta[5])
        self.recent.append(step)
        duration = end_s - start_s
        slowest = self.slowest
        if len(slowest) < self.policy.slowest_steps:
            heapq.heappush(slowest, (duration, index, step))
        elif slowest and duration > slowest[0][0]:
            heapq.heapreplace(slowest, (duration, index, step))
        if index % self.stride == 0:
            self.sampled[index] = step
            if len(self.sampled) > self.policy.sampled_steps:
                self.stride *= 2
                self.sampled = {i: s for i, s in self.sampled.items() if i % self.stride == 0}

    def count_spans(self, spans: list[tuple[Any, ...]], dropped: int) -> None:
        """Totals of every span of a step (``dropped`` spans were counted but not kept)."""
        self.spans_seen += len(spans) + dropped
        totals = self.span_totals
        for phase, start_s, end_s, depth, _ in spans:
            key = (phase, depth)
            t = totals.get(key)
            seconds = end_s - start_s
            if t is None:
                totals[key] = [1, seconds, seconds]
            else:
                t[0] += 1
                t[1] += seconds
                if seconds > t[2]:
                    t[2] = seconds

    def set_loss(self, index: int, loss: float | None) -> None:
        """A loss read after its step was committed (device tensors): into the totals and kept copies."""
        if loss is None:
            return
        self.losses.add(index, loss)
        for holder in (self.sampled, ):
            step = holder.get(index)
            if step is not None:
                holder[index] = _with_loss(step, loss)
        for seq in (self.warm, self.recent):
            for i, step in enumerate(seq):
                if step[0] == index:
                    seq[i] = _with_loss(step, loss)
        for i, (d, j, step) in enumerate(self.slowest):
            if j == index:
                self.slowest[i] = (d, j, _with_loss(step, loss))

    def find(self, index: int) -> StepTuple | None:
        """The kept step ``index`` (the recent ring first: that is where callers look)."""
        recent = self.recent
        if recent and recent[0][0] <= index <= recent[-1][0]:
            return recent[index - recent[0][0]]
        if index < len(self.warm) and self.warm[index][0] == index:
            return self.warm[index]
        step = self.sampled.get(index)
        if step is not None:
            return step
        return next((s for _, i, s in self.slowest if i == index), None)

    def kept(self) -> list[StepTuple]:
        """Every kept step once, in index order."""
        out: dict[int, StepTuple] = {s[0]: s for s in self.warm}
        for source in (self.sampled.values(), (s for _, _, s in self.slowest), self.recent):
            for s in source:
                out[s[0]] = s
        return [out[i] for i in sorted(out)]

    def step_totals(self) -> StepTotals | None:
        return self.totals.freeze() if self.totals.count else None

    def loss_totals(self) -> LossTotals:
        return self.losses.freeze()

    def span_records(self) -> tuple[SpanTotals, ...]:
        return tuple(SpanTotals(phase=p, depth=d, count=int(c), total_s=t, max_s=m)
                     for (p, d), (c, t, m) in sorted(self.span_totals.items()))


def _with_loss(step: StepTuple, loss: float) -> StepTuple:
    return step[:5] + (loss,) + step[6:]


class TelemetryStore:
    """Telemetry samples in bounded memory: per (source, metric) series, exact count/total/min/max and
    the distinct values (up to ``MAX_DISTINCT``) of every sample, and an evenly thinned series of at
    most ``telemetry_samples`` (every ``stride``-th sample, the stride doubling as needed). Beyond
    ``telemetry_series`` series, new sources fold into ``<kind>:others`` (e.g. short-lived DataLoader
    workers, ``worker:<pid>``, one per epoch). Thread-safe: sampler threads add while the run goes."""

    def __init__(self, policy: RetentionPolicy) -> None:
        self.policy = policy
        self.seen = 0
        self._series: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()

    def add(self, samples: Iterable[TelemetrySample]) -> None:
        with self._lock:
            for sample in samples:
                self.seen += 1
                key = (sample.source, sample.metric)
                series = self._series.get(key)
                if series is None:
                    if len(self._series) >= self.policy.telemetry_series:
                        key = (sample.source.split(":", 1)[0] + ":others", sample.metric)
                        series = self._series.get(key)
                    if series is None:
                        series = self._series[key] = _Series(key)
                series.add(sample, self.policy.telemetry_samples)

    def kept(self) -> tuple[TelemetrySample, ...]:
        with self._lock:
            out = [s for series in self._series.values() for s in series.kept]
        return tuple(sorted(out, key=lambda s: s.time_s))

    def totals(self) -> tuple[MetricTotals, ...]:
        with self._lock:
            return tuple(s.freeze() for _, s in sorted(self._series.items()))


class _Series:
    __slots__ = ("key", "count", "total", "min", "max", "distinct", "kept", "stride")

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.distinct: set[float] | None = set()
        self.kept: list[TelemetrySample] = []
        self.stride = 1

    def add(self, sample: TelemetrySample, cap: int) -> None:
        value = sample.value
        position = self.count
        self.count += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if self.distinct is not None:
            self.distinct.add(value)
            if len(self.distinct) > MAX_DISTINCT:
                self.distinct = None
        if position % self.stride == 0 and cap:
            # positions on the grid are multiples of the stride, so the kept list is every stride-th
            self.kept.append(sample)
            if len(self.kept) > cap:
                self.stride *= 2
                self.kept = self.kept[::2]

    def freeze(self) -> MetricTotals:
        return MetricTotals(source=self.key[0], metric=self.key[1], count=self.count, total=self.total,
                            min=self.min, max=self.max,
                            distinct=tuple(sorted(self.distinct)) if self.distinct is not None else ())


class EventStore:
    """Capture events, at most ``events_per_kind`` of each kind; the rest are counted."""

    def __init__(self, policy: RetentionPolicy) -> None:
        self.cap = policy.events_per_kind
        self.kept: list[Event] = []
        self.per_kind: dict[str, int] = {}
        self.dropped = 0

    def add(self, event: Event) -> None:
        seen = self.per_kind.get(event.kind, 0)
        self.per_kind[event.kind] = seen + 1
        if seen < self.cap:
            self.kept.append(event)
        else:
            self.dropped += 1
