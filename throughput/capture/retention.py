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
import itertools
import math
import sys
import threading
import warnings
from collections import deque
from typing import Any, Iterable, Sequence

import numpy as np

from throughput.session.accumulate import LOSS, LossAccumulator, StepAccumulator, StepBlock, StepTuple
from throughput.session.records import STANDARD_PHASES, Event, TelemetrySample
from throughput.session.retention import (FOLDED_COUNT_MAX, FOLDED_EXAMPLES, FOLDED_PHASE, MAX_DISTINCT,
                                          FoldedPhases, LossTotals, MetricTotals, RetentionPolicy, SpanTotals,
                                          StepTotals)

#: The thinning grid's steps from fast drains stay rows of their ``Batch`` while the stride is at most
#: this, and are built when read; past it they are built as they come (a row then pins more of its batch
#: than its tuple would hold: at stride 4, ~1 KB of columns for ~0.8 KB built, 3 phases).
LAZY_MAX_STRIDE = 4


class Batch:
    """Consecutive steps of one fast drain, as columns (see ``Recorder._fast_batch``): every step has
    the same phases, opened and closed one after the other (no nesting). ``step(k)`` builds the k-th
    step's tuple; only kept steps are ever built."""

    __slots__ = ("first_index", "start", "end", "names", "values", "meta", "losses", "span_names", "span_times")

    def __init__(self, first_index: int, start: np.ndarray, end: np.ndarray, names: tuple[str, ...],
                 values: np.ndarray, meta: list[tuple[Any, ...]], losses: list[float | None],
                 span_names: tuple[str, ...], span_times: np.ndarray) -> None:
        self.first_index, self.start, self.end, self.names, self.values = first_index, start, end, names, values
        self.meta, self.losses, self.span_names, self.span_times = meta, losses, span_names, span_times

    def __len__(self) -> int:
        return len(self.meta)

    def step(self, k: int) -> StepTuple:
        return self.steps([k])[0]

    def steps(self, rows: Sequence[int]) -> list[StepTuple]:
        """The tuples of ``rows`` (the same as ``step(k)`` for each), built with one numpy read per
        column and no Python call per step or span: early in a run the thinning keeps every step, so
        this runs for whole batches inside the training loop's drains."""
        if not rows:
            return []
        rows = list(rows)
        times, values = self.span_times[rows].tolist(), self.values[rows].tolist()
        starts, ends = self.start[rows].tolist(), self.end[rows].tolist()
        first, names, meta, losses, span_names = self.first_index, self.names, self.meta, self.losses, self.span_names
        depths, devices = (0,) * len(span_names), (None,) * len(span_names)   # spans: (name, start, end, 0, None)
        return [(first + k, start, end, names, tuple(v), meta[k], losses[k],
                 tuple(zip(span_names, t[0::2], t[1::2], depths, devices)), None, None)
                for k, t, v, start, end in zip(rows, times, values, starts, ends)]


class StepRetention:
    """Bounded per-step detail plus exact totals (see the module docstring). Not thread-safe: the
    recorder calls it under its drain lock. Steps arrive one at a time (``add``) or as batches."""

    def __init__(self, policy: RetentionPolicy, warmup_steps: int) -> None:
        self.policy = policy
        self.warmup_steps = warmup_steps
        self.warm: list[StepTuple] = []
        self.recent: deque[Any] = deque()       # step tuples and (Batch, first row) pairs, oldest first
        self.recent_count = 0
        self.slowest: list[tuple[float, int, StepTuple]] = []
        self.sampled: dict[int, StepTuple] = {}   # built steps on the thinning grid
        self.lazy: deque[tuple[Batch, range]] = deque()   # more grid steps: (batch, its rows on the grid)
        self.lazy_count = 0                              # rows in ``lazy``
        self.stride = 1
        self.totals = StepAccumulator(warmup_steps)
        self.losses = LossAccumulator()
        self.seen = 0
        self.spans_seen = 0
        # phase (depth 0) or (phase, depth) -> [count, total_s, max_s]; the recorder adds every span
        self.span_totals: dict[Any, list[Any]] = {}

    def hold_in_full(self, steps: int) -> bool:
        """Keep steps ``0 .. steps - 1`` in full and leave them out of the totals, like warm-up steps (a
        view window whose steps ran slower). Only before a measured step was counted; False then."""
        if steps <= self.warmup_steps:
            return True
        if self.totals.count or self.seen > self.warmup_steps:
            return False
        self.warmup_steps = steps
        self.totals.first_index = steps
        return True

    def add(self, step: StepTuple) -> None:
        index = step[0]
        self.seen += 1
        if step[LOSS] is not None:
            self.losses.add(index, step[LOSS])
        if index < self.warmup_steps:
            self.warm.append(step)
            return
        self.totals.add(step)
        self._to_recent(step, 1)
        self._consider(step[2] - step[1], index, step)
        if index % self.stride == 0:
            self._sample(index, step)

    def add_batch(self, batch: Batch) -> None:
        n, first = len(batch), batch.first_index
        self.seen += n
        self.losses.add_many(first, batch.losses)
        w = min(n, max(0, self.warmup_steps - first))      # rows that are warm-up steps
        self.warm.extend(batch.steps(range(w)))
        if w == n:
            return
        self.totals.add_block(StepBlock(batch.start[w:], batch.end[w:], batch.names, batch.values[w:],
                                        batch.meta[w:]))
        self._to_recent((batch, w), n - w)
        self._consider_batch(batch, w)
        # The thinning grid's points in this batch. While the stride is small they stay rows of the batch
        # (built when read): early in a run every step is on the grid, and building each one's tuple in
        # the drain cost ~4 us a step inside a training loop (1.5 ms MLP steps, 2-core Xeon).
        start = first + w
        rows = range(start + (-start) % self.stride - first, n, self.stride)
        if self.stride <= LAZY_MAX_STRIDE:
            if rows:
                self.lazy.append((batch, rows))
                self.lazy_count += len(rows)
        else:
            self.sampled.update(zip(range(first + rows.start, first + n, rows.step), batch.steps(rows)))
        self._thin()

    def _consider_batch(self, batch: Batch, w: int) -> None:
        """The slowest-steps heap, fed rows ``w ..`` of ``batch``: each row that would enter it goes in
        with a placeholder, then the rows still there are built in one ``steps`` call (a row pushed out
        by a later one of the same batch is never built)."""
        slowest, cap = self.slowest, self.policy.slowest_steps
        if cap == 0:
            return
        first = batch.first_index
        for row, duration in enumerate((batch.end[w:] - batch.start[w:]).tolist(), start=w):
            if len(slowest) < cap or duration > slowest[0][0]:   # the test of _consider, without a call per row
                self._consider(duration, first + row, None)
        # Entries compare by (duration, index), never by the step: the index is unique.
        placed = [k for k, entry in enumerate(slowest) if entry[2] is None]
        if placed:
            built = batch.steps([slowest[k][1] - first for k in placed])
            for k, step in zip(placed, built):
                slowest[k] = (slowest[k][0], slowest[k][1], step)

    def count_span_columns(self, names: tuple[str, ...], seconds: np.ndarray) -> None:
        """Span totals of a batch: column j holds every step's span of phase ``names[j]`` (depth 0)."""
        steps = len(seconds)
        self.spans_seen += steps * len(names)
        totals = self.span_totals
        # two numpy calls for all the columns: a small batch's cost is these calls, not the sums
        for name, total, longest in zip(names, seconds.sum(axis=0).tolist(), seconds.max(axis=0).tolist()):
            t = totals.get(name)
            if t is None:
                totals[name] = [steps, total, longest]
            else:
                t[0] += steps
                t[1] += total
                t[2] = max(t[2], longest)

    def _to_recent(self, item: Any, count: int) -> None:
        recent = self.recent
        recent.append(item)
        self.recent_count += count
        cap = self.policy.recent_steps
        while recent:
            oldest = recent[0]
            size = 1 if isinstance(oldest, tuple) and not isinstance(oldest[0], Batch) else len(oldest[0]) - oldest[1]
            if self.recent_count - size < cap:
                break
            recent.popleft()
            self.recent_count -= size

    def _consider(self, duration: float, index: int, step: Any) -> None:
        """Into the slowest-steps heap if it has room or ``duration`` beats its fastest (``step`` None: a
        placeholder that ``_consider_batch`` builds)."""
        slowest = self.slowest
        if len(slowest) < self.policy.slowest_steps:
            heapq.heappush(slowest, (duration, index, step))
        elif slowest and duration > slowest[0][0]:
            heapq.heapreplace(slowest, (duration, index, step))

    def _sample(self, index: int, step: StepTuple) -> None:
        self.sampled[index] = step
        self._thin()

    def _thin(self) -> None:
        """Double the stride (dropping every kept step off the new grid) until at most the cap is kept;
        past ``LAZY_MAX_STRIDE`` the grid's rows still in batches are built (see ``LAZY_MAX_STRIDE``)."""
        while len(self.sampled) + self.lazy_count > self.policy.sampled_steps:
            self.stride = stride = self.stride * 2
            self.sampled = {i: s for i, s in self.sampled.items() if i % stride == 0}
            lazy, self.lazy, self.lazy_count = self.lazy, deque(), 0
            for batch, rows in lazy:   # rows step by stride / 2: every other one stays on the new grid
                first = batch.first_index
                on_grid = rows[0::2] if (first + rows[0]) % stride == 0 else rows[1::2]
                if on_grid:
                    self.lazy.append((batch, on_grid))
                    self.lazy_count += len(on_grid)
        if self.stride > LAZY_MAX_STRIDE and self.lazy:
            self._build_lazy()

    def _build_lazy(self) -> None:
        for batch, rows in self.lazy:
            self.sampled.update(zip((batch.first_index + r for r in rows), batch.steps(rows)))
        self.lazy.clear()
        self.lazy_count = 0

    def _sampled_steps(self) -> Iterable[StepTuple]:
        """Every step on the thinning grid, the ones still in batches built now (and not kept built)."""
        yield from self.sampled.values()
        for batch, rows in self.lazy:
            yield from batch.steps(rows)

    def recent_steps(self) -> list[StepTuple]:
        """The last ``recent_steps`` steps, built."""
        want = self.policy.recent_steps
        out: list[StepTuple] = []
        for item in reversed(self.recent):     # newest first, building only the rows still wanted
            if len(out) >= want:
                break
            if isinstance(item[0], Batch):
                batch, row = item
                out += batch.steps(range(len(batch) - 1, max(row, len(batch) - (want - len(out))) - 1, -1))
            else:
                out.append(item)
        out.reverse()
        return out

    def set_loss(self, index: int, loss: float | None) -> None:
        """A loss read after its step was committed (device tensors): into the totals and kept copies.
        (Device runs take the one-step path, so kept copies are plain tuples.)"""
        if loss is None:
            return
        self.losses.add(index, loss)
        if self.lazy:   # never on CUDA runs today (one-step path), but a kept copy must not miss its loss
            self._build_lazy()
        step = self.sampled.get(index)
        if step is not None:
            self.sampled[index] = _with_loss(step, loss)
        for seq in (self.warm, self.recent):
            for i, item in enumerate(seq):
                if not isinstance(item[0], Batch) and item[0] == index:
                    seq[i] = _with_loss(item, loss)
        for i, (d, j, step) in enumerate(self.slowest):
            if j == index:
                self.slowest[i] = (d, j, _with_loss(step, loss))

    def find(self, index: int) -> StepTuple | None:
        """The kept step ``index`` (the recent steps first: that is where callers look)."""
        for item in reversed(self.recent):
            if isinstance(item[0], Batch):
                batch, row = item
                if batch.first_index + row <= index < batch.first_index + len(batch):
                    return batch.step(index - batch.first_index)
            elif item[0] == index:
                return item
        if index < len(self.warm) and self.warm[index][0] == index:
            return self.warm[index]
        step = self.sampled.get(index)
        if step is not None:
            return step
        for batch, rows in self.lazy:
            if index - batch.first_index in rows:
                return batch.step(index - batch.first_index)
        return next((s for _, i, s in self.slowest if i == index), None)

    def kept(self) -> list[StepTuple]:
        """Every kept step once, in index order."""
        out: dict[int, StepTuple] = {s[0]: s for s in self.warm}
        for source in (self._sampled_steps(), (s for _, _, s in self.slowest), self.recent_steps()):
            for s in source:
                out[s[0]] = s
        return [out[i] for i in sorted(out)]

    def step_totals(self) -> StepTotals | None:
        return self.totals.freeze() if self.totals.count else None

    def loss_totals(self) -> LossTotals:
        return self.losses.freeze()

    def span_records(self) -> tuple[SpanTotals, ...]:
        rows = [((k, 0) if isinstance(k, str) else k, v) for k, v in self.span_totals.items()]
        return tuple(SpanTotals(phase=p, depth=d, count=int(c), total_s=t, max_s=m)
                     for (p, d), (c, t, m) in sorted(rows))


def _with_loss(step: StepTuple, loss: float) -> StepTuple:
    return step[:LOSS] + (loss,) + step[LOSS + 1:]


class PhaseNamesCapped(RuntimeWarning):
    """A run reached ``RetentionPolicy.phase_names``: later phase names are recorded as ``FOLDED_PHASE``."""


class PhaseNames:
    """The phase names a run records: the standard phases, then the first ``policy.phase_names`` other
    distinct names; every later name is recorded as ``FOLDED_PHASE``, so its time still counts (the
    phases of a step still add up to its wall time) and every per-name structure of the run (the
    recorder's totals, span totals, the profiler's phase objects) holds at most the cap plus the
    standard phases plus one name. The folded names are counted and the first few kept by name
    (``folded``); a ``PhaseNamesCapped`` warning is given once, when the first name is folded.

    ``admitted`` is the set of names recorded as themselves (read by the recorder's hot path: a name
    in it costs one set lookup). Not thread-safe: the recorder's owner thread is the only caller."""

    def __init__(self, policy: RetentionPolicy) -> None:
        self.cap = policy.phase_names
        self.admitted: set[str] = set(STANDARD_PHASES) | {FOLDED_PHASE}
        self._counted = 0                          # admitted names that count against the cap
        self._folded: dict[str, None] = {}         # folded names, in order, up to FOLDED_COUNT_MAX
        self._more = False                         # a name was folded past FOLDED_COUNT_MAX

    def admit(self, name: str) -> str:
        """The name to record ``name`` as: itself, or ``FOLDED_PHASE`` once the cap is reached."""
        if name in self.admitted:
            return name
        if self._counted < self.cap:
            self._counted += 1
            self.admitted.add(name)
            return name
        folded = self._folded
        if name not in folded:
            if not folded:
                _warn_capped(self.cap, name)
            if len(folded) < FOLDED_COUNT_MAX:
                folded[name] = None
            else:
                self._more = True   # past the count's bound: more names than it says
        return FOLDED_PHASE

    def folded(self) -> FoldedPhases | None:
        """What was folded so far (None: nothing)."""
        if not self._folded:
            return None
        return FoldedPhases(names=len(self._folded), more=self._more,
                            examples=tuple(itertools.islice(self._folded, FOLDED_EXAMPLES)))


def _warn_capped(cap: int, name: str) -> None:
    message = (f"throughput: more than {cap} distinct phase names in this run; {name!r} and every later new "
               f"name are recorded together as phase {FOLDED_PHASE!r} (the report lists the first ones). "
               "Build phase names from a fixed set (not from a step or request number), or raise the cap: "
               "Profiler(retention=RetentionPolicy(phase_names=...))")
    try:
        warnings.warn(message, PhaseNamesCapped, stacklevel=_outside_throughput())
    except PhaseNamesCapped:   # -W error: the profiler does not end the run it measures; the report still says it
        pass


def _outside_throughput() -> int:
    """For ``warnings.warn`` called by this function's caller: the ``stacklevel`` of the first frame
    outside the throughput package (the script's line that named the phase, however many of our frames
    it came through: 4 or 5 from ``admit``)."""
    level, frame = 1, sys._getframe(1)     # the caller's frame is stacklevel 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("throughput."):
        level, frame = level + 1, frame.f_back
    return level


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
        self._lock = threading.RLock()   # see Recorder._drain_lock

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
