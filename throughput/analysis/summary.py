"""The frozen ``Summary`` of one session: what every renderer and the advisor read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from throughput.analysis.breakdown import PhaseStats, phase_stats
from throughput.analysis.findings import findings
from throughput.analysis.measured import steady_state
from throughput.analysis.memory import MemorySummary, memory_summary
from throughput.analysis.mfu import Mfu, run_mfu_of
from throughput.analysis.operators import Operators, operators
from throughput.analysis.window import window_of
from throughput.analysis.rates import Rates, rates_of
from throughput.analysis.retained import retention_notes
from throughput.analysis.stats import Distribution, distribution
from throughput.analysis.verdict import Verdict, verdict
from throughput.finding import Finding
from throughput.session.records import StepRecord
from throughput.session.session import Session


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    run_id: str
    device: str
    device_name: str
    world_size: int
    rank: int
    step_rule: str
    end: str
    end_detail: str
    partial: bool
    steps_total: int
    warmup_steps: int                     # steps actually excluded
    steps_measured: int
    step_time: Distribution | None        # None when no step was measured
    warmup_step_time: Distribution | None
    phases: tuple[PhaseStats, ...]
    rates: Rates
    micro_steps_per_step: float | None
    verdict: Verdict
    notes: tuple[str, ...]
    findings: tuple[Finding, ...] = ()    # training-hygiene findings (analysis/findings.py)
    mfu: Mfu | None = None                # None only for summaries built by hand
    operators: Operators | None = None    # the --ops window's top operators per phase
    memory: MemorySummary | None = None   # memory per phase (view window) and for the run


def steady_steps(session: Session) -> tuple[tuple[StepRecord, ...], tuple[StepRecord, ...], str | None]:
    """(warm-up steps, measured steps, note) among the steps a session kept (all of them unless it is
    a bounded capture's: figures come from ``analysis.measured.steady_state``). If the run is too short
    to drop warm-up, all steps are measured and the note says so."""
    steps = session.steps
    window = window_of(session)
    if window is not None:   # the operator window's steps ran slower: never part of the figures
        steps = tuple(s for s in steps if not window.excludes(s.index))
    k = session.info.warmup_steps
    if session.steps_seen > k:
        return tuple(s for s in steps if s.index < k), tuple(s for s in steps if s.index >= k), None
    if not steps:
        return (), (), None
    return (), steps, (f"only {len(steps)} step(s): warm-up ({k}) not excluded, "
                       "figures include start-up costs")


def capture_context(session: Session) -> dict[str, float | int | str | bool]:
    """Facts recorded at capture as events of kind 'context' (num_workers, pin_memory, optimizer)."""
    ctx: dict[str, float | int | str | bool] = {}
    for e in session.events:
        if e.kind == "context":
            ctx.update(e.detail)
    return ctx


def summarize(session: Session) -> Summary:
    """Analyse a session (pure: no I/O, no torch). Raises ValueError when a bounded session is asked
    for a longer warm-up than it was captured with."""
    warm, measured, note = steady_state(session)
    phases = phase_stats(measured) if measured is not None else ()
    r = rates_of(measured)
    info = session.info
    context = capture_context(session)
    micro = measured.micro_steps / measured.count if measured is not None else None
    notes = tuple(info.notes) + ((note,) if note else ()) + retention_notes(session)
    if not session.steps_seen:
        notes += ("no training steps were seen",)
    ops = operators(session, measured.wall_s / measured.count if measured is not None else None)
    memory = memory_summary(session)
    notes += _window_note(session, ops)
    return Summary(
        run_id=info.run_id, device=info.device, device_name=info.device_name, world_size=info.world_size,
        rank=info.rank, step_rule=info.step_rule.value, end=info.end.value, end_detail=info.end_detail,
        partial=info.partial, steps_total=session.steps_seen, warmup_steps=len(warm),
        steps_measured=measured.count if measured is not None else 0,
        step_time=measured.durations if measured is not None else None, warmup_step_time=_dist(warm),
        phases=phases, rates=r, micro_steps_per_step=micro,
        verdict=verdict(phases, info.device, r.device_busy_share, context, memory, device_name=info.device_name),
        notes=notes,
        findings=findings(session, phases, context, measured),
        mfu=run_mfu_of(info, measured.count if measured is not None else 0,
                       measured.wall_s if measured is not None else 0.0),
        operators=ops, memory=memory,
    )


def _window_note(session: Session, ops: Operators | None) -> tuple[str, ...]:
    window = window_of(session)
    if window is None:
        return ()
    slower = f" ({ops.slowdown:.2f}x the steady-state step time)" if ops is not None and ops.slowdown else ""
    under = " and ".join(name for name, on in (("torch.profiler", window.ops),
                                               ("the allocator's history recorder", window.memory_snapshot)) if on)
    return (f"steps {window.excluded_first}-{window.excluded_last} ran under {under}{slower} and are "
            "left out of the steady-state figures",)


def _dist(steps: Sequence[StepRecord]) -> Distribution | None:
    return distribution([s.duration_s for s in steps]) if steps else None
