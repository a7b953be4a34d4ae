"""The persisted data model of one profiled run (one rank)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from throughput.session.records import Event, RunInfo, Span, StepRecord, TelemetrySample


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """Everything measured in one run of one process. Derived numbers live in analysis, not here.

    ``spans`` may be capped (see ``Recorder``) to keep traces small; ``steps`` is always complete.
    """

    info: RunInfo
    steps: tuple[StepRecord, ...] = ()
    spans: tuple[Span, ...] = ()
    events: tuple[Event, ...] = ()
    telemetry: tuple[TelemetrySample, ...] = ()
    artifacts: tuple[str, ...] = field(default=())   # files beside the session (py-spy profile, ...)

    @property
    def wall_time_s(self) -> float:
        """Sum of step durations (time outside steps, such as set-up, is not included)."""
        return sum(s.duration_s for s in self.steps)

    def with_info(self, **changes: object) -> "Session":
        return replace(self, info=replace(self.info, **changes))  # type: ignore[arg-type]
