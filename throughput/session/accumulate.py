"""Running aggregates of steps and losses in constant memory (mutable builders of ``retention``'s
records). The capture feeds them every step; analysis uses the same code to aggregate the steps a
session kept, so both give the same numbers to the last bit.

Per step only one list append happens; every ``FLUSH_STEPS`` steps the waiting steps are folded into
exact sums and sketches with numpy, so a step costs about a microsecond in all.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from throughput.session.exact import ExactSum
from throughput.session.records import OTHER, StepRecord, exclusive_times
from throughput.session.retention import LossTotals, StepTotals, ValueStats
from throughput.session.sketch import SketchBuilder

FLUSH_STEPS = 2048


class ValueAccumulator:
    """Exact count/sum/sum of squares/min/max and a sketch of a stream of non-negative values."""

    __slots__ = ("count", "total", "total_sq", "min", "max", "sketch", "squares")

    def __init__(self, squares: bool = False) -> None:
        self.count = 0
        self.total = ExactSum()
        self.total_sq = ExactSum()
        self.min = math.inf
        self.max = -math.inf
        self.sketch = SketchBuilder()
        self.squares = squares

    def add(self, x: np.ndarray) -> None:
        if not x.size:
            return
        self.count += int(x.size)
        self.total.add_array(x)
        if self.squares:
            self.total_sq.add_squares(x)
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        self.sketch.add_array(x)

    def flush(self) -> None:
        """Nothing waits here (kept for symmetry with StepAccumulator)."""

    def add_stats(self, stats: ValueStats, sign: int = 1) -> None:
        """Merge (sign 1) or remove (sign -1) frozen stats; min/max are only merged, never removed."""
        self.flush()
        self.count += sign * stats.count
        for mine, theirs in ((self.total, stats.total), (self.total_sq, stats.total_sq)):
            other = ExactSum.of_partials(theirs)
            if sign > 0:
                mine.add(other)
            else:
                mine.subtract(other)
        if sign > 0 and stats.count:
            self.min, self.max = min(self.min, stats.min), max(self.max, stats.max)
        self.sketch.merge(stats.sketch, sign)

    def freeze(self) -> ValueStats:
        self.flush()
        empty = self.count == 0
        return ValueStats(count=self.count, total=self.total.partials(), total_sq=self.total_sq.partials(),
                          min=0.0 if empty else self.min, max=0.0 if empty else self.max,
                          sketch=self.sketch.freeze())


# A step as the capture hands it over: plain values in a tuple, the garbage collector stops tracking it.
# (index, start_s, end_s, phase names, phase seconds, meta, loss, spans, device (phase, s) pairs, busy)
# meta = (samples, tokens, padding_tokens, micro_steps, grad_norm, peak_memory_bytes)
# spans = ((phase, start_s, end_s, depth, device_s or None), ...)
StepTuple = tuple[Any, ...]
INDEX, START, END, NAMES, VALUES, META, LOSS, SPANS, DEVICE, BUSY = range(10)


def step_tuple(step: StepRecord, spans: tuple[tuple[Any, ...], ...] = ()) -> StepTuple:
    return (step.index, step.start_s, step.end_s, tuple(step.phase_s), tuple(step.phase_s.values()),
            (step.samples, step.tokens, step.padding_tokens, step.micro_steps, step.grad_norm,
             step.peak_memory_bytes), step.loss, spans,
            tuple(step.device_phase_s.items()) if step.device_phase_s is not None else None, step.device_busy_s)


class StepBlock:
    """Consecutive steps with the same phases in the same order, as columns (what the capture's fast
    drain produces, and what single steps are grouped into): ``values[i, j]`` is step i's seconds in
    phase ``names[j]``; ``meta[i]`` its (samples, tokens, padding_tokens, micro_steps, grad_norm,
    peak_memory_bytes); ``device``/``busy`` its device times or None."""

    __slots__ = ("start", "end", "names", "values", "meta", "device", "busy")

    def __init__(self, start: np.ndarray, end: np.ndarray, names: tuple[str, ...], values: np.ndarray,
                 meta: list[tuple[Any, ...]], device: list[Any] | None = None,
                 busy: list[float | None] | None = None) -> None:
        self.start, self.end, self.names, self.values = start, end, names, values
        self.meta, self.device, self.busy = meta, device, busy


class StepAccumulator:
    """Aggregates of consecutive steps starting at ``first_index`` (see ``StepTotals``).

    Steps wait (as tuples or blocks) until ``FLUSH_STEPS`` of them are there (or ``freeze``); then
    blocks with the same phases are stacked and folded in with numpy: ``other`` is computed
    column-wise in the order Python's ``sum`` adds (so it is bit-identical to ``exclusive_times``), and
    the rare step whose phases come within rounding of its wall time gets ``exclusive_times`` itself."""

    def __init__(self, first_index: int) -> None:
        self.first_index = first_index
        self.count = 0
        self.first_start_s = 0.0
        self.last_end_s = 0.0
        self.duration = ValueAccumulator(squares=True)
        self.phases: dict[str, ValueAccumulator] = {}
        self.device_steps = 0
        self.device_busy = ExactSum()
        self.device_phase_sums: dict[str, ExactSum] = {}
        self.counts = [0, 0, 0, 0, 0, 0]   # samples, steps; tokens, steps; padding, steps
        self.micro_steps = 0
        self.peak_memory_bytes: int | None = None
        self.pending: list[StepTuple] = []
        self.blocks: list[StepBlock] = []
        self._waiting = 0

    def add(self, step: StepTuple) -> None:
        """Add the next step (steps arrive in index order)."""
        if self.count == 0:
            self.first_start_s = step[START]
        self.count += 1
        self.last_end_s = step[END]
        self.pending.append(step)
        self._waiting += 1
        if self._waiting >= FLUSH_STEPS:
            self.flush()

    def add_block(self, block: StepBlock) -> None:
        """Add the next steps as a block (in index order with ``add``'s steps)."""
        n = len(block.meta)
        if not n:
            return
        if self.count == 0:
            self.first_start_s = float(block.start[0])
        self.count += n
        self.last_end_s = float(block.end[-1])
        self._blocks_from_pending()
        self.blocks.append(block)
        self._waiting += n
        if self._waiting >= FLUSH_STEPS:
            self.flush()

    def add_record(self, step: StepRecord) -> None:
        self.add(step_tuple(step))

    def _blocks_from_pending(self) -> None:
        """Waiting single steps become one-row blocks of their own phases (rare: the slow drain)."""
        for s in self.pending:
            self.blocks.append(StepBlock(np.array([s[START]]), np.array([s[END]]), s[NAMES],
                                         np.array([s[VALUES]], dtype=np.float64).reshape(1, len(s[NAMES])),
                                         [s[META]], [s[DEVICE]], [s[BUSY]]))
        self.pending = []

    def flush(self) -> None:
        self._blocks_from_pending()
        blocks, self.blocks = self.blocks, []
        self._waiting = 0
        if not blocks:
            return
        groups: dict[tuple[str, ...], list[StepBlock]] = {}
        for block in blocks:
            groups.setdefault(block.names, []).append(block)
            self._fold_meta(block)
        durations = []
        for names, members in groups.items():
            duration = np.concatenate([b.end - b.start for b in members])
            durations.append(duration)
            self._add_phases(names, np.concatenate([b.values for b in members]), duration)
        self.duration.add(np.concatenate(durations))

    def _fold_meta(self, block: StepBlock) -> None:
        counts = self.counts
        metas = block.meta
        same = metas.count(metas[0]) == len(metas)    # one meta for every step: count it once
        for meta in metas[:1] if same else metas:
            k = len(metas) if same else 1
            if meta[0] is not None:
                counts[0] += meta[0] * k
                counts[1] += k
            if meta[1] is not None:
                counts[2] += meta[1] * k
                counts[3] += k
            if meta[2] is not None:
                counts[4] += meta[2] * k
                counts[5] += k
            self.micro_steps += meta[3] * k
            if meta[5] is not None and (self.peak_memory_bytes is None or meta[5] > self.peak_memory_bytes):
                self.peak_memory_bytes = meta[5]
        if block.device is not None and block.busy is not None:
            busy = [b for b in block.busy if b is not None]
            if busy:
                self.device_steps += len(busy)
                self.device_busy.add_array(np.asarray(busy))
            per_phase: dict[str, list[float]] = {}
            for items, b in zip(block.device, block.busy):
                if items is not None and b is not None:
                    for name, seconds in items:
                        per_phase.setdefault(name, []).append(seconds)
            for name, values in per_phase.items():
                self.device_phase_sums.setdefault(name, ExactSum()).add_array(np.asarray(values))

    def _add_phases(self, names: tuple[str, ...], values: np.ndarray, duration: np.ndarray) -> None:
        plain = np.zeros(len(duration))
        for j in range(len(names)):            # Python's sum: ((0 + a) + b) + c
            plain = plain + values[:, j]
        times = np.maximum(values, 0.0)
        other = np.maximum(0.0, duration - plain)
        covered = times.sum(axis=1) if names else plain
        # Rows whose phases come within rounding of the wall time get the exact test (math.fsum, as
        # exclusive_times does), and the exact rule where the phases overrun it.
        suspect = np.flatnonzero((covered > duration * (1 - 1e-9)) & (duration > 0)).tolist()
        for row, row_times in zip(suspect, times[suspect].tolist()):
            if not math.fsum(row_times) > duration[row]:
                continue
            exact = exclusive_times(float(duration[row]), dict(zip(names, values[row].tolist())))
            times[row] = [exact[n] for n in names]
            other[row] = exact[OTHER]
        for j, name in enumerate(names):
            self._phase(name).add(times[:, j])
        self._phase(OTHER).add(other)

    def _phase(self, name: str) -> "ValueAccumulator":
        acc = self.phases.get(name)
        if acc is None:
            acc = self.phases[name] = ValueAccumulator()
        return acc

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

    def add_many(self, first_step: int, losses: list[float | None]) -> None:
        """``add`` for consecutive steps from ``first_step`` (None: the step had no loss)."""
        if not losses or (losses[0] is None and losses.count(None) == len(losses)):   # none given (plain step())
            return
        values = np.asarray([math.nan if v is None else v for v in losses], dtype=np.float64) \
            if None in losses else np.asarray(losses, dtype=np.float64)
        if None in losses or not np.isfinite(values).all():   # rare: the exact rules one by one
            for k, value in enumerate(losses):
                if value is not None:
                    self.add(first_step + k, value)
            return
        self.count += len(losses)
        lo, hi = int(values.argmin()), int(values.argmax())
        if self.first is None:
            self.first = (first_step, float(values[0]))
        if self.low is None or values[lo] < self.low[1]:
            self.low = (first_step + lo, float(values[lo]))
        if self.high is None or values[hi] > self.high[1]:
            self.high = (first_step + hi, float(values[hi]))
        self.last = (first_step + len(losses) - 1, float(values[-1]))

    def freeze(self) -> LossTotals:
        def part(p: tuple[int, float] | None) -> tuple[int | None, float | None]:
            return (None, None) if p is None else p

        (fs, fv), (ls, lv), (hs, hv), (zs, zv) = part(self.first), part(self.low), part(self.high), part(self.last)
        return LossTotals(count=self.count, nonfinite=self.nonfinite, first_nonfinite_step=self.first_bad,
                          last_nonfinite_step=self.last_bad, last_finite_before_nonfinite=self.before_bad,
                          first=fv, first_step=fs, min=lv, min_step=ls, max=hv, max_step=hs, last=zv, last_step=zs)
