"""What a bounded capture kept, in words for the report, and figures read from its totals. Pure."""

from __future__ import annotations

from throughput.session.retention import FOLDED_PHASE, FoldedPhases
from throughput.session.session import Session
from throughput.session.sketch import RELATIVE_ACCURACY


def retention_notes(session: Session) -> tuple[str, ...]:
    """One note per kind of data that was not kept in full (none for a session that kept everything)."""
    r = session.retention
    if r is None:
        return ()
    notes = []
    p = r.policy
    if not session.complete:
        notes.append(
            f"long run: per-step detail kept for {len(session.steps)} of {r.steps_seen} steps (the warm-up, "
            f"the last {p.recent_steps}, the {p.slowest_steps} slowest, every {r.sample_stride}th); counts, "
            f"totals, means, shares, min/max and std cover every step exactly, quantiles come from a sketch "
            f"(within {RELATIVE_ACCURACY:.1%} of the value at their rank)")
    if r.spans_seen > len(session.spans):
        notes.append(f"trace: {len(session.spans)} of {r.spans_seen} phase spans kept (those of the kept steps, "
                     f"at most {p.spans_per_step} a step and {p.max_spans} in all)")
    if r.telemetry_seen > len(session.telemetry):
        notes.append(f"telemetry: {len(session.telemetry)} of {r.telemetry_seen} samples kept (an even thinning "
                     "of each series); means and maxima cover every sample")
    if r.events_dropped:
        notes.append(f"{r.events_dropped} capture event(s) beyond {p.events_per_kind} of one kind were counted, "
                     "not kept")
    if r.folded_phases is not None:
        notes.append(folded_phases_note(r.folded_phases, p.phase_names))
    return tuple(notes)


def folded_phases_note(folded: FoldedPhases, cap: int) -> str:
    """The note of a run that had more phase names than its cap (their time is in ``FOLDED_PHASE``)."""
    count = f"over {folded.names:,}" if folded.more else f"{folded.names:,}"
    shown = ", ".join(repr(n) for n in folded.examples) + (", ..." if folded.more or folded.names > len(folded.examples)
                                                          else "")
    return (f"phase names: past the cap of {cap} distinct names, {count} later name(s) ({shown}) were recorded "
            f"together as phase {FOLDED_PHASE!r}, which holds their time. To see them apart, build phase names "
            "from a fixed set (not from a step or request number) or raise RetentionPolicy(phase_names=...)")


def peak_rss_bytes(session: Session) -> float | None:
    """The largest RSS sample of the main process over the whole run (every sample, kept or not)."""
    if session.retention is not None and session.retention.telemetry_totals:
        peaks = [t.max for t in session.retention.telemetry_totals if t.source == "main" and t.metric == "rss_bytes"]
        return max(peaks) if peaks else None
    rss = [t.value for t in session.telemetry if t.source == "main" and t.metric == "rss_bytes"]
    return max(rss) if rss else None
