"""``throughput advise script.py [args]``: profile the script, search, measure each change alone, advise.

Every probe is the script re-run under ``throughput profile --set ...`` (``ScriptTarget``), so every
measured recommendation was measured with the exact command it prints.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from throughput.advisor.allocator_trial import FAULT_WINDOW_S, allocator_candidate, needs_longer_profile
from throughput.advisor.apply import TargetRef
from throughput.advisor.candidates import Start, candidates
from throughput.advisor.rules import precision_notes, rule_input
from throughput.advisor.script import ScriptTarget
from throughput.advisor.stream_check import CHECK_BATCHES, check_script, duplicated_finding
from throughput.cli.advise_output import emit, plan_gain
from throughput.cli.advise_probe import (cadence, confirm_alone, confirm_steps, extra_knobs, global_batch,
                                         rules_not_covered, run_search, search_evidence, search_space)
from throughput.cli.errors import CliError
from throughput.finding import Finding, Setting, as_int


# Knobs the search measures for a script: a rule's estimate for them is superseded by the measurement.
SEARCHED = frozenset({"num_workers", "amp", "micro_batch_size", "prefetch_factor", "persistent_workers", "tf32",
                      "pin_memory"})


def _profile(args: argparse.Namespace, script: Path) -> tuple[ScriptTarget, Any]:
    """The first run: the script as it is, profiled (with the sample digests of its first batches, for
    the worker-split check). One line and exit status 2 when it trains nothing."""
    first = ScriptTarget(script, args.args, timeout_s=args.probe_timeout, digests=CHECK_BATCHES)
    base = first.run({}, max(args.probe_steps, CHECK_BATCHES))
    session = first.last_session
    if session is None or not session.steps:
        why = base.error or "no training steps were seen"
        raise CliError(f"{script}: the profiling run gave nothing to tune ({why}); check that the script "
                       "trains (calls loss.backward() and optimizer.step())")
    return first, session


def run_script_advice(args: argparse.Namespace) -> int:
    script = Path(args.target)
    if not script.is_file():
        raise CliError(f"{script}: no such script")
    first, session = _profile(args, script)
    x = rule_input(session)
    ctx = x.context
    # the script's own autocast, read by the first profile; one entered inside the model's forward
    # (Accelerate, the HF Trainer) no --set amp reaches, so the search leaves precision alone there
    own_amp = "fp32" if ctx.get("autocast_inside") is True else str(ctx.get("script_amp", "fp32"))
    target = ScriptTarget(script, args.args, timeout_s=args.probe_timeout, own_amp=own_amp)
    batch = int(ctx["batch_size"]) if isinstance(ctx.get("batch_size"), int) else 0
    accum = max(1, round(x.summary.micro_steps_per_step or 1.0))
    workers_now = as_int(ctx.get("num_workers", 0))
    g = global_batch(args, batch * accum if batch else _samples_per_step(x), _tokens_per_sample(x))
    notes: list[str] = []
    split, caveat, workers = _stream(target, ctx, workers_now, session, notes)
    # no DataLoader batch size to set (manual batching): the micro-batch is not a knob of this script
    # the script accumulates in its own code: every probe runs with its accumulation, from its own batch up
    space, left_out = search_space(g, ScriptTarget.supported, extra_knobs(args, ScriptTarget.supported), workers,
                                   own=(batch, accum) if batch else (g, 1))
    start: dict[str, Setting] = {"num_workers": workers_now, "micro_batch_size": batch or g, "amp": own_amp}
    result = run_search(target, space, args, start)
    start_cfg = _start_config(ctx, batch or g, workers_now, own_amp)
    cands = candidates(Start(kind="script", config=start_cfg, accum=accum, stream_caveat=caveat, global_batch=g),
                       result.config, search_evidence(result), space.extras)
    step_s = x.summary.step_time.median_s if x.summary.step_time else None
    alloc, why, fault_runs = _allocator(target, session, first.last_maxrss_bytes, args, step_s)
    cands += [alloc] if alloc else []
    notes += [why] if why else []
    steps = confirm_steps(args, step_s)
    conf = confirm_alone(target, cands, args, steps)
    findings = conf.findings + ([split] if split else []) + _unmeasured(x, args, cands, split, notes)
    header = [f"advice for {script} ({x.summary.device_name}): global batch {g} samples; "
              f"{len(result.trials) + len(conf.trials) + 1 + fault_runs} runs (search probes of {args.probe_steps} steps, "
              f"then {args.confirm_rounds} interleaved round(s) of {steps} steps measuring each change alone)"]
    ref = TargetRef(kind="script", path=str(args.target), args=tuple(args.args))
    all_notes = [*notes, *left_out, *precision_notes(x), *result.notes, *conf.notes]
    return emit(args, findings, ref, header, all_notes, plan_gain(conf, cands, findings),
                measurement={"confirm_rounds": args.confirm_rounds, "confirm_steps": steps})


def _allocator(target: ScriptTarget, session: Any, peak_rss_bytes: int | None, args: argparse.Namespace,
               step_s: float | None) -> tuple[Any, str, int]:
    """(the allocator candidate or None, the note when none, profiling runs added). The first profile is a
    few steps, shorter than the host sampler's interval, so it rarely measures page faults; then the
    script is profiled once more, unchanged, for ``FAULT_WINDOW_S`` (or the confirmation window, if longer)
    of steady steps, and that profile decides: skipped only when it measured the faults cheap."""
    if not needs_longer_profile(session):
        return (*allocator_candidate(session, peak_rss_bytes), 0)
    # no step cap as the confirmation has: one run of about window_s whatever the step time (a script
    # that stops sooner ends it sooner, and then the trial decides)
    window_s = max(FAULT_WINDOW_S, args.confirm_window)
    steps = max(args.probe_steps, math.ceil(window_s / step_s)) if step_s else args.probe_steps
    target.run({}, steps)
    longer = target.last_session if target.last_session is not None and target.last_session.steps else None
    # no usable profile (the run failed): nothing says the faults are cheap, so the trial decides
    return (*allocator_candidate(longer, target.last_maxrss_bytes or peak_rss_bytes), 1)


def _unmeasured(x: Any, args: argparse.Namespace, cands: list[Any], split: Finding | None,
                notes: list[str]) -> list[Finding]:
    """The profile's rules for what the search and the confirmation did not cover, and the cadence."""
    covered = {k for c in cands for k in c.settings} | SEARCHED
    drop = ({"host.page_faults"} if "malloc_threshold_bytes" in covered else set()) | (
        {"data.num_workers"} if split else set())
    return rules_not_covered(x, covered, drop) + cadence(x, args, notes)


def _start_config(ctx: Any, batch: int, workers: int, amp: str) -> dict[str, Setting]:
    """What the script does now, as the profile recorded it (its DataLoader's settings, its own autocast)."""
    prefetch = ctx.get("prefetch_factor")
    return {"micro_batch_size": batch, "num_workers": workers, "amp": amp,
            "prefetch_factor": prefetch if isinstance(prefetch, int) else 2,
            "persistent_workers": bool(ctx.get("persistent_workers", False)),
            "pin_memory": bool(ctx.get("pin_memory", False))}


def _stream(target: ScriptTarget, ctx: Any, workers_now: int, session: Any,
            notes: list[str]) -> tuple[Finding | None, str | None, tuple[int, ...] | None]:
    """For an IterableDataset: (the split finding when workers duplicate the stream, the caveat when the
    split is unconfirmed, the worker counts the search may try)."""
    if ctx.get("dataset") != "iterable":
        return None, None, None
    check = check_script(target, workers_now, baseline_session=session)
    if check.verdict == "duplicated":
        notes.append("num_workers not searched: loader workers would duplicate the stream (data.worker_split)")
        return duplicated_finding(check), None, (workers_now,)
    if check.verdict == "unconfirmed":
        return None, "an IterableDataset whose split between workers could not be confirmed (" + \
            check.evidence[-1] + "): make its __iter__ use torch.utils.data.get_worker_info()", None
    notes.append("IterableDataset: " + "; ".join(check.evidence))
    return None, None, None


def _samples_per_step(x: Any) -> float | None:
    r, st = x.summary.rates, x.summary.step_time
    return (r.samples_per_s or 0.0) * (st.median_s if st else 0.0) or None


def _tokens_per_sample(x: Any) -> float | None:
    r = x.summary.rates
    return r.tokens_per_s / r.samples_per_s if r.tokens_per_s and r.samples_per_s else None

