"""Training-hygiene findings: events seen at capture plus checks on the recorded steps (pure).

Each finding (``throughput.finding.Finding``) has a stable ``rule_id``, the measured evidence and the
change to make. Thresholds come from ``throughput/thresholds.py`` and are stated in the evidence so a
user can disagree with them.
"""

from __future__ import annotations

import math
import shlex
from typing import Mapping, Sequence

from throughput.analysis.breakdown import PhaseStats
from throughput.analysis.faults import allocator_env, faults_are_costly, page_faults_in
from throughput.analysis.loss import diagnose_steps
from throughput.analysis.measured import Measured
from throughput.analysis.retained import peak_rss_bytes
from throughput.finding import Finding
from throughput.session.records import Event, StepRecord
from throughput.session.session import Session
from throughput.thresholds import INPUT_BOUND_SHARE, FAULTS_PER_STEP_MIN, SYSTEM_SHARE_MIN


ACTIONS: Mapping[str, str] = {
    "eval_mode_training": "call model.train() before the training loop resumes (after each evaluation)",
    "eval_in_train_mode": "call model.eval() before evaluating (and model.train() afterwards)",
    "bn_small_batch": "use a larger per-device batch, SyncBatchNorm across devices, or GroupNorm/LayerNorm",
    "num_workers_zero": "DataLoader(num_workers=N) with N up to the CPU cores available, persistent_workers=True",
    "pin_memory_off": "DataLoader(pin_memory=True) and batch.to(device, non_blocking=True)",
    "loss_non_finite": "lower the learning rate, add warm-up or gradient clipping, check inputs for NaN; "
                       "with fp16 use a GradScaler",
    # a GradScaler was in use (and the recorded loss is the unscaled one): advising one would contradict the run
    "loss_non_finite_scaled": "lower the learning rate, add warm-up or gradient clipping, check inputs for NaN",
    "loss_spikes_unclipped": "clip gradients (torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)) "
                             "or lower the learning rate",
}


# Workers of an IterableDataset each run its whole __iter__: without a split, every sample comes N times.
ITERABLE_WORKERS_CAVEAT = ("the dataset is an IterableDataset: first make its __iter__ yield only this worker's "
                           "share (torch.utils.data.get_worker_info(): id, num_workers), or every worker "
                           "yields every sample")

# Events that carry data for other sections of the report, not hygiene observations.
DATA_EVENT_KINDS = frozenset({"context", "pyspy_hot", "pyspy_window",
                              # the view window (capture/window.py): operators, memory per phase
                              "window", "operator", "op_span", "memory_phase", "memory_step", "memory_run"})


def findings(session: Session, phases: Sequence[PhaseStats], context: Mapping[str, float | int | str | bool],
             measured: Measured | None) -> tuple[Finding, ...]:
    """All hygiene findings of a run, capture events first, then the checks on steps. ``measured`` are
    the steady-state figures (for the page-fault check). The loss checks read the steps the session
    kept (every step, unless a long run kept a bounded set) and the exact loss totals."""
    device = session.info.device
    out = [_from_event(e) for e in session.events if e.kind not in DATA_EVENT_KINDS]
    curve = not _objectives_alternate(context)
    out += [f for f in (_workers_zero(phases, context), _pin_memory_off(device, context),
                        _non_finite(session, context), _spikes_unclipped(session.steps, context) if curve else None,
                        _page_faults(session, measured)) if f is not None]
    return tuple(out) + (loss_curve_findings(session.steps, clipping=_clipping(context)) if curve else ())


def _objectives_alternate(ctx: Mapping[str, float | int | str | bool]) -> bool:
    """Did several optimizers take turns on objectives of their own (a GAN: the discriminator's loss, then
    the generator's)? Then the recorded loss is one of them, and its rise or spikes are the game between
    them, not a divergence: the loss-curve checks would advise a lower learning rate on a healthy run."""
    return ctx.get("objectives_alternate") is True


def _clipping(ctx: Mapping[str, float | int | str | bool]) -> bool | None:
    """Whether the run clipped gradients, as recorded at capture (None: not recorded)."""
    value = ctx.get("grad_clipping")
    return value if isinstance(value, bool) else None


def _from_event(e: Event) -> Finding:
    evidence = tuple(f"{k}={v}" for k, v in e.detail.items())
    return Finding(rule_id=e.kind, first_step=e.step, title=e.message, evidence=evidence,
                   action=ACTIONS.get(e.kind, "see the message"))


def _workers_zero(phases: Sequence[PhaseStats], ctx: Mapping[str, float | int | str | bool]) -> Finding | None:
    data = sum(p.share for p in phases if p.phase == "data")
    if ctx.get("num_workers") != 0 or data < INPUT_BOUND_SHARE:
        return None
    action = ACTIONS["num_workers_zero"]
    if ctx.get("dataset") == "iterable":
        action += "; " + ITERABLE_WORKERS_CAVEAT
    return Finding(rule_id="num_workers_zero",
                   title="the DataLoader loads batches in the training process (num_workers=0) "
                         "while the step waits for data",
                   evidence=(f"data wait {data:.0%} of step time (>= {INPUT_BOUND_SHARE:.0%})", "num_workers=0"),
                   action=action)


def _pin_memory_off(device: str, ctx: Mapping[str, float | int | str | bool]) -> Finding | None:
    if device != "cuda" or ctx.get("pin_memory") is not False:
        return None
    return Finding(rule_id="pin_memory_off",
                   title="batches are copied to the GPU from pageable memory (pin_memory=False)",
                   evidence=("device=cuda", "pin_memory=False"), action=ACTIONS["pin_memory_off"])


def _non_finite(session: Session, ctx: Mapping[str, float | int | str | bool]) -> Finding | None:
    if session.retention is not None and not session.complete:
        loss = session.retention.loss
        count, first = loss.nonfinite, loss.first_nonfinite_step
    else:
        bad = [s.index for s in session.steps if s.loss is not None and not math.isfinite(s.loss)]
        count, first = len(bad), (bad[0] if bad else None)
    if not count or first is None:
        return None
    evidence: tuple[str, ...] = (f"{count} of {session.steps_seen} steps", f"first step {first}")
    scaled = ctx.get("grad_scaler") is True
    if scaled:
        evidence += ("a GradScaler was in use (the loss shown is the unscaled one)",)
    return Finding(rule_id="loss_non_finite", first_step=first,
                   title=f"the loss was NaN or infinite in {count} step(s), first at step {first}",
                   evidence=evidence, action=ACTIONS["loss_non_finite_scaled" if scaled else "loss_non_finite"])


def _spikes_unclipped(steps: Sequence[StepRecord], ctx: Mapping[str, float | int | str | bool]) -> Finding | None:
    """The loss diagnosis's ``loss.spike`` (an excursion of the loss's level that came back, not one hard
    mini-batch: see analysis/loss.py) in a run that never clips its gradients. It judged single steps
    before (a loss 3x the median of the previous 10), which a healthy run at batch 1-8 crosses on every
    hard sample."""
    if ctx.get("grad_clipping") is not False:
        return None
    spike = next((f for f in diagnose_steps(steps) if f.rule_id == "loss.spike"), None)
    if spike is None:
        return None
    count = int(spike.values.get("count", 1))
    return Finding(rule_id="loss_spikes_unclipped", first_step=spike.first_step,
                   title=f"the loss spiked {count} time(s) and gradients are not clipped",
                   evidence=(spike.title, "clip_grad_norm_ never called"),
                   action=ACTIONS["loss_spikes_unclipped"])


def _page_faults(session: Session, m: Measured | None) -> Finding | None:
    if m is None:
        return None
    p = page_faults_in(session.telemetry, m.first_start_s, m.last_end_s, m.wall_s / m.count,
                       peak_rss_bytes=peak_rss_bytes(session))
    if p is None or not faults_are_costly(p) or p.system_share is None:
        return None
    env = " ".join(f"{k}={v}" for k, v in allocator_env(p.peak_rss_bytes).items())
    rss = f"peak RSS {p.peak_rss_bytes / 2**20:.0f} MiB" if p.peak_rss_bytes is not None else "peak RSS unknown"
    return Finding(rule_id="page_faults_per_step",
                   title="the allocator returns large buffers to the kernel after each step and faults them "
                         "in again the next (glibc malloc thresholds)",
                   evidence=(f"{p.faults_per_step:,.0f} minor page faults a step (>= {FAULTS_PER_STEP_MIN:,.0f})",
                             f"kernel time {p.system_share:.0%} of the process's CPU time "
                             f"(>= {SYSTEM_SHARE_MIN:.0%}), over {p.window_s:.1f} s of steady state", rss),
                   action=f"start the run with {env} {_command(session.info.argv)} (Linux/glibc only; or LD_PRELOAD "
                          "jemalloc/tcmalloc); caveat: the process then holds its memory at its peak "
                          "instead of returning it between steps")


def _command(argv: Sequence[str]) -> str:
    """How the run was started, for an action to print: ``python`` and its script (or ``-m module``,
    kept as recorded) with its arguments quoted; ``python train.py`` when the session did not record it."""
    if not argv:
        return "python train.py"
    first = argv[0] if argv[0].startswith("-m ") else shlex.quote(argv[0])
    return " ".join(["python", first, *(shlex.quote(a) for a in argv[1:])])


def loss_curve_findings(steps: Sequence[StepRecord], clipping: bool | None = None) -> tuple[Finding, ...]:
    """The diagnosis of a profiled session, for the profile report. ``loss.nonfinite`` is left out:
    findings.py reports non-finite losses itself."""
    return tuple(f for f in diagnose_steps(steps, clipping=clipping) if f.rule_id != "loss.nonfinite")
