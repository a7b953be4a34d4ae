"""Running aggregates of steps and losses in constant memory (mutable builders of ``retention``'s
records). The capture feeds them every step; analysis uses the same code to aggregate the steps a
session kept, so both give the same numbers to the last bit.

Per step only Python appends happen (a few list appends); every ``FLUSH_STEPS`` steps the columns are
folded into exact sums and sketches with a few numpy calls, so the per-value cost is about 0.05 us.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

from throughput.session.exact import ExactSum
from throughput.session.records import StepRecord, exclusive_times
from throughput.session.retention import LossTotals, StepTotals, ValueStats
from throughput.session.sketch import SketchBuilder

FLUSH_STEPS = 2048


class ValueAccumulator:
    """Exact count/sum/sum of squares/min/max and a sketch of a stream of non-negative values."""

    __slots__ = ("pending", "count", "total", "total_sq", "min", "max", "sketch", "squares")

    def __init__(self, squares: bool = False) -> None:
        self.pending: list[float] = []
        self.count = 0
        self.total = ExactSum()
        self.total_sq = ExactSum()
        self.min = math.inf
        self.max = -math.inf
        self.sketch = SketchBuilder()
        self.squares = squares

    def flush(self) -> None:
        if not self.pending:
            return
        x = np.asarray(self.pending, dtype=np.float64)
        self.pending = []
        self.count += int(x.size)
        self.total.add_array(x)
        if self.squares:
            self.total_sq.add_squares(x)
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        self.sketch.add_array(x)

    def add_stats(self, stats: ValueStats, sign: int = 1) -> None:
        """Merge (sign 1) or remove (sign -1) frozen stats; min/max are only merged, never removed."""
        self.flush()
        self.count += sign * stats.count
        for mine, theirs in ((self.total, stats.total), (self.total_sq, stats.total_sq)):
            other = ExactSum.of_partials(theirs)
            mine.add(other) if sign > 0 else mine.subtract(other)
        if sign > 0 and stats.count:
            self.min, self.max = min(self.min, stats.min), max(self.max, stats.max)
        self.sketch.merge(stats.sketch, sign)

    def freeze(self) -> ValueStats:
        self.flush()
        empty = self.count == 0
        return ValueStats(count=self.count, total=self.total.partials(), total_sq=self.total_sq.partials(),
                          min=0.0 if empty else self.min, max=0.0 if empty else self.max,
                          sketch=self.sketch.freeze())


class StepAccumulator:
    """Aggregates of consecutive steps starting at ``first_index`` (see ``StepTotals``)."""

    def __init__(self, first_index: int) -> None:
        self.first_index = first_index
        self.count = 0
        self.first_start_s = 0.0
        self.last_end_s = 0.0
        self.duration = ValueAccumulator(squares=True)
        self.phases: dict[str, ValueAccumulator] = {}
        self.device_steps = 0
        self.device_busy = ExactSum()
        self.device_busy_pending: list[float] = []
        self.device_phases: dict[str, list[float]] = {}
        self.device_phase_sums: dict[str, ExactSum] = {}
        self.counts = [0, 0, 0, 0, 0, 0]   # samples, steps; tokens, steps; padding, steps
        self.micro_steps = 0
        self.peak_memory_bytes: int | None = None
        self._since_flush = 0

    def add(self, start_s: float, end_s: float, phase_s: Mapping[str, float], samples: int | None,
            tokens: int | None, padding_tokens: int | None, micro_steps: int,
            device_phase_s: Mapping[str, float] | None, device_busy_s: float | None,
            peak_memory_bytes: int | None) -> None:
        """Add the next step (steps arrive in index order)."""
        if self.count == 0:
            self.first_start_s = start_s
        self.count += 1
        self.last_end_s = end_s
        duration = end_s - start_s
        self.duration.pending.append(duration)
        phases = self.phases
        for name, seconds in exclusive_times(duration, phase_s).items():
            acc = phases.get(name)
            if acc is None:
                acc = phases[name] = ValueAccumulator()
            acc.pending.append(seconds)
        counts = self.counts
        for slot, value in ((0, samples), (2, tokens), (4, padding_tokens)):
            if value is not None:
                counts[slot] += value
                counts[slot + 1] += 1
        self.micro_steps += micro_steps
        if device_phase_s is not None and device_busy_s is not None:
            self._add_device(device_phase_s, device_busy_s)
        if peak_memory_bytes is not None and (self.peak_memory_bytes is None or peak_memory_bytes > self.peak_memory_bytes):
            self.peak_memory_bytes = peak_memory_bytes
        self._since_flush += 1
        if self._since_flush >= FLUSH_STEPS:
            self.flush()

    def add_record(self, step: StepRecord) -> None:
        self.add(step.start_s, step.end_s, step.phase_s, step.samples, step.tokens, step.padding_tokens,
                 step.micro_steps, step.device_phase_s, step.device_busy_s, step.peak_memory_bytes)

    def _add_device(self, device_phase_s: Mapping[str, float], busy_s: float) -> None:
        self.device_steps += 1
        self.device_busy_pending.append(busy_s)
        for name, seconds in device_phase_s.items():
            self.device_phases.setdefault(name, []).append(seconds)

    def flush(self) -> None:
        self._since_flush = 0
        self.duration.flush()
        for acc in self.phases.values():
            acc.flush()
        if self.device_busy_pending:
            self.device_busy.add_array(np.asarray(self.device_busy_pending))
            self.device_busy_pending = []
        for name, values in self.device_phases.items():
            if values:
                self.device_phase_sums.setdefault(name, ExactSum()).add_array(np.asarray(values))
                values.clear()

    def freeze(self) -> StepTotals:
        self.flush()
        c = self.counts
        return StepTotals(
            first_index=self.first_index, count=self.count, first_start_s=self.first_start_s,
            last_end_s=self.last_end_s, duration_s=self.duration.freeze(),
            phase_s={name: acc.freeze() for name, acc in self.phases.items()},
            device_steps=self.device_steps, device_busy_s=self.device_busy.partials(),
            device_phase_s={name: s.partials() for name, s in self.device_phase_sums.items()},
            samples=c[0], samples_steps=c[1], tokens=c[2], tokens_steps=c[3], padding_tokens=c[4],
            padding_steps=c[5], micro_steps=self.micro_steps, peak_memory_bytes=self.peak_memory_bytes,
        )


def totals_of(steps: Iterable[StepRecord], first_index: int = 0) -> StepTotals:
    acc = StepAccumulator(first_index)
    for step in steps:
        acc.add_record(step)
    return acc.freeze()


class LossAccumulator:
    """``LossTotals`` of a stream of (step, loss) pairs in step order."""

    def __init__(self) -> None:
        self.count = 0
        self.nonfinite = 0
        self.first_bad: int | None = None
        self.last_bad: int | None = None
        self.before_bad: float | None = None
        self.first: tuple[int, float] | None = None
        self.low: tuple[int, float] | None = None
        self.high: tuple[int, float] | None = None
        self.last: tuple[int, float] | None = None

    def add(self, step: int, loss: float) -> None:
        self.count += 1
        if not math.isfinite(loss):
            self.nonfinite += 1
            if self.first_bad is None:
                self.first_bad = step
                self.before_bad = self.last[1] if self.last is not None else None
            self.last_bad = step
            return
        point = (step, loss)
        if self.first is None:
            self.first = point
        if self.low is None or loss < self.low[1]:
            self.low = point
        if self.high is None or loss > self.high[1]:
            self.high = point
        self.last = point

    def freeze(self) -> LossTotals:
        def part(p: tuple[int, float] | None) -> tuple[int | None, float | None]:
            return (None, None) if p is None else p

        (fs, fv), (ls, lv), (hs, hv), (zs, zv) = part(self.first), part(self.low), part(self.high), part(self.last)
        return LossTotals(count=self.count, nonfinite=self.nonfinite, first_nonfinite_step=self.first_bad,
                          last_nonfinite_step=self.last_bad, last_finite_before_nonfinite=self.before_bad,
                          first=fv, first_step=fs, min=lv, min_step=ls, max=hv, max_step=hs, last=zv, last_step=zs)
