"""What a bounded capture keeps (session schema 2): the caps, and the exact aggregates of what it did
not keep in full.

A run of any length keeps full per-step detail only for a bounded set of steps: the warm-up, the most
recent ``recent_steps``, the ``slowest_steps`` slowest, and an even thinning of the rest (every
``sample_stride``-th step, the stride doubling whenever more than ``sampled_steps`` would be kept).
Every step, kept or not, goes into ``StepTotals``: exact counts, totals and moments, and quantile
sketches (``session.sketch``). Spans are kept with their step, telemetry as an evenly thinned series
per metric, events up to a number per kind; each has its totals here. Phase names are capped too: past
``phase_names`` distinct ones, later names are recorded together as ``FOLDED_PHASE`` (``FoldedPhases``
says which), so a script that builds names from the step number cannot grow the run without bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Mapping

from throughput.session.sketch import QuantileSketch


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    """The caps of a bounded capture. Memory and post-run work are bounded by these, not by the run."""

    recent_steps: int = 512           # the last steps, kept in full (the live progress reads them too)
    slowest_steps: int = 64           # the slowest measured steps, kept in full
    sampled_steps: int = 2048         # an evenly thinned sample of all steps, kept in full
    spans_per_step: int = 64          # spans kept with each kept step (a step's further spans are counted)
    max_spans: int = 50_000           # spans kept in all. With 256 and 200,000, a loop of 32 accumulated
                                      # micro-batches a step (~100 spans a step) wrote a 37 MiB report
                                      # folder and took 4.1 s after the run, +160 MiB of memory
    telemetry_samples: int = 512      # thinned samples kept per (source, metric) series
    telemetry_series: int = 64        # (source, metric) series; later sources fold into "<kind>:others"
    events_per_kind: int = 4096       # capture events kept per kind (the rest are counted; >= the 4,000
                                      # operator spans an --ops window draws)
    phase_names: int = 64             # distinct phase names recorded, the standard ones not counted; later
                                      # names are recorded as FOLDED_PHASE (schema 3; older files: 64)

    def __post_init__(self) -> None:
        for name in ("recent_steps", "slowest_steps", "sampled_steps", "spans_per_step", "max_spans",
                     "telemetry_samples", "telemetry_series", "events_per_kind", "phase_names"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"retention {name} must be an integer >= 0, got {value!r}")
        if self.sampled_steps < 2:
            raise ValueError(f"retention sampled_steps must be >= 2 (the thinning halves it), "
                             f"got {self.sampled_steps}")


#: The phase that the names past ``RetentionPolicy.phase_names`` are recorded as. Not a name a script can
#: choose (``phase()`` refuses it), and in parentheses so that no one takes it for a phase of their own.
FOLDED_PHASE: Final = "(more phases)"

#: Folded names remembered by name (the first ones seen), and counted one by one up to ``FOLDED_COUNT_MAX``
#: (each counted name is held until then: ~80 KB at most).
FOLDED_EXAMPLES: Final = 8
FOLDED_COUNT_MAX: Final = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class FoldedPhases:
    """The phase names a run saw past ``RetentionPolicy.phase_names``; their time is in ``FOLDED_PHASE``.

    ``names`` counts them (distinct names) up to ``FOLDED_COUNT_MAX``; ``more`` says there were more
    than that. ``examples`` are the first ``FOLDED_EXAMPLES`` of them, in the order they were seen."""

    names: int
    more: bool = False
    examples: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.names < 1 or len(self.examples) > self.names:
            raise ValueError(f"folded phases: {self.names} name(s) counted, {len(self.examples)} example(s)")


@dataclass(frozen=True, slots=True, kw_only=True)
class ValueStats:
    """Exact count, sum, sum of squares, min and max of a set of non-negative values (the unit is the
    containing field's), and their quantile sketch. Sums are partials: non-overlapping floats, largest
    first, whose exact sum is the total (``math.fsum`` gives it correctly rounded)."""

    count: int = 0
    total: tuple[float, ...] = ()
    total_sq: tuple[float, ...] = ()
    min: float = 0.0
    max: float = 0.0
    sketch: QuantileSketch = field(default_factory=QuantileSketch)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTotals:
    """Exact aggregates of the steps ``first_index`` .. ``first_index + count - 1`` (the measured ones).

    ``phase_s`` holds exclusive host seconds per phase, ``other`` included, as ``analysis.breakdown``
    computes them per step; a step without a phase counts as 0 s for it (its ``count`` is smaller).
    Counts (samples, tokens, padding tokens) are totals over the ``*_steps`` steps that reported them.
    """

    first_index: int
    count: int
    first_start_s: float
    last_end_s: float
    duration_s: ValueStats
    phase_s: Mapping[str, ValueStats] = field(default_factory=dict)
    device_steps: int = 0                                  # steps whose device times resolved
    device_busy_s: tuple[float, ...] = ()                  # exact partials
    device_phase_s: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    samples: int = 0
    samples_steps: int = 0
    tokens: int = 0
    tokens_steps: int = 0
    padding_tokens: int = 0
    padding_steps: int = 0
    micro_steps: int = 0
    peak_memory_bytes: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LossTotals:
    """The loss over every step that reported one (warm-up included), exactly."""

    count: int = 0
    nonfinite: int = 0
    first_nonfinite_step: int | None = None
    last_nonfinite_step: int | None = None
    last_finite_before_nonfinite: float | None = None
    first: float | None = None                 # the first finite loss
    first_step: int | None = None
    min: float | None = None
    min_step: int | None = None
    max: float | None = None
    max_step: int | None = None
    last: float | None = None
    last_step: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SpanTotals:
    """Every span of one phase at one nesting depth, kept or not."""

    phase: str
    depth: int
    count: int
    total_s: float
    max_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricTotals:
    """Every sample of one telemetry series. ``distinct`` holds its values when it took at most
    ``MAX_DISTINCT`` of them (state-like metrics such as throttle reason masks), else is empty."""

    source: str
    metric: str
    count: int
    total: float
    min: float
    max: float
    distinct: tuple[float, ...] = ()


MAX_DISTINCT = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """What a bounded capture saw, what it kept in full (the session's steps, spans, telemetry,
    events) and the aggregates of everything."""

    policy: RetentionPolicy
    steps_seen: int
    sample_stride: int = 1
    measured: StepTotals | None = None         # None when no step after the warm-up ended
    loss: LossTotals = field(default_factory=LossTotals)
    spans_seen: int = 0
    span_totals: tuple[SpanTotals, ...] = ()
    telemetry_seen: int = 0
    telemetry_totals: tuple[MetricTotals, ...] = ()
    events_dropped: int = 0
    folded_phases: FoldedPhases | None = None  # None: every phase name was recorded as itself
