"""The persisted data model: frozen records, the Session, and versioned JSON."""

from throughput.session.io import SCHEMA_VERSION, SessionFormatError, load_session, save_session
from throughput.session.records import (
    STANDARD_PHASES,
    Event,
    Phase,
    RunEnd,
    RunInfo,
    Span,
    StepRecord,
    StepRule,
    TelemetrySample,
)
from throughput.session.session import Session

__all__ = [
    "SCHEMA_VERSION", "STANDARD_PHASES", "Event", "Phase", "RunEnd", "RunInfo", "Session",
    "SessionFormatError", "Span", "StepRecord", "StepRule", "TelemetrySample", "load_session",
    "save_session",
]
