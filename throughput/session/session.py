"""The persisted data model of one profiled run (one rank)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from throughput.session.records import Event, RunInfo, Span, StepRecord, TelemetrySample
from throughput.session.retention import Retention


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """Everything measured in one run of one process. Derived numbers live in analysis, not here.

    A bounded capture (``retention`` set) keeps full detail for a bounded set of steps (and their
    spans), a thinned telemetry series and capped events, and the exact aggregates of everything in
    ``retention``. Without ``retention`` (hand-made sessions, schema 1 files) ``steps`` are all the steps.
    """

    info: RunInfo
    steps: tuple[StepRecord, ...] = ()
    spans: tuple[Span, ...] = ()
    events: tuple[Event, ...] = ()
    telemetry: tuple[TelemetrySample, ...] = ()
    artifacts: tuple[str, ...] = field(default=())   # files beside the session (py-spy profile, ...)
    retention: Retention | None = None

    @property
    def complete(self) -> bool:
        """True when ``steps`` holds every step of the run (nothing was folded into aggregates only)."""
        return self.retention is None or self.retention.steps_seen == len(self.steps)

    @property
    def steps_seen(self) -> int:
        """Steps that ended in the run, kept in full or not."""
        return len(self.steps) if self.retention is None else self.retention.steps_seen

    def with_info(self, **changes: object) -> "Session":
        return replace(self, info=replace(self.info, **changes))  # type: ignore[arg-type]  # RunInfo field names, checked by replace()
