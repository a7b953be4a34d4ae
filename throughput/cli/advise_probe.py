"""``throughput advise script.py`` and ``--recipe``: the modes that run code (probes), kept apart from the
rules-only path so that ``throughput advise RUN.json`` imports no torch.

Both modes: a baseline, the measured search (``advisor/search.py``), then each change the search
found measured alone against the unchanged run with the command it prints (``advisor/confirm.py``),
and the rules on the baseline profile for what the search does not cover.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

from throughput.advisor.candidates import plan_settings
from throughput.advisor.confirm import Candidate, Confirmation, confirm
from throughput.advisor.rules import MTBF_NOTE, apply_rules, cadence_finding
from throughput.advisor.search import AdvisorError, SearchResult, search
from throughput.advisor.space import SearchSettings, SearchSpace, micro_batch_candidates
from throughput.advisor.trials import ProbeTarget
from throughput.cli.errors import CliError
from throughput.finding import Finding, Setting
from throughput.thresholds import REPORTABLE_GAIN

MAX_CONFIRM_STEPS = 200


def worker_counts() -> tuple[int, ...]:
    cores = os.cpu_count() or 1
    return tuple(sorted({0, 1, 2, *(w for w in (4, 8, 16) if w <= cores)}))


def search_settings(args: argparse.Namespace) -> SearchSettings:
    return SearchSettings(probe_steps=args.probe_steps, memory_budget_bytes=args.memory_budget,
                          time_budget_s=args.time_budget)


def global_batch(args: argparse.Namespace, samples_per_step: float | None, tokens_per_sample: float | None) -> int:
    if args.target_global_batch:
        return int(args.target_global_batch)
    if args.target_tokens:
        if not tokens_per_sample:
            raise CliError("--target-tokens needs token counts, but the batches carry no integer token tensor; "
                           "use --target-global-batch (samples)")
        return max(1, math.ceil(args.target_tokens / tokens_per_sample))
    if not samples_per_step:
        raise CliError("cannot tell the batch size from the run; pass --target-global-batch")
    return max(1, round(samples_per_step))


def extra_knobs(args: argparse.Namespace, supported: frozenset[str]) -> tuple[str, ...]:
    names = tuple(n.strip() for n in (args.candidates or "").split(",") if n.strip())
    unknown = [n for n in names if n not in supported or n in ("micro_batch_size", "num_workers", "amp")]
    if unknown:
        raise CliError(f"--candidates {','.join(unknown)}: not an on/off knob this target can apply "
                       f"(it applies: {', '.join(sorted(supported))})")
    return names


def search_space(g: int, supported: frozenset[str], extras: tuple[str, ...] = (), workers: tuple[int, ...] | None = None,
           ac: bool = False, own: tuple[int, int] | None = None) -> tuple[SearchSpace, tuple[str, ...]]:
    """The search space on this machine, and why precision options were left out (hardware rule).
    ``own``: a script's (micro-batch, accumulation) as its profile observed them. The script accumulates
    in its own code, so every probe runs with that accumulation (fixed in the space), the script's own
    micro-batch is searched (the baseline), and nothing below it (a smaller one shrinks its global batch);
    above it, the powers of two up to ``g``."""
    from throughput.advisor.workload import device_fixed_settings, precision_here
    opts = precision_here()
    amp = opts.candidates if "amp" in supported else ("fp32",)
    sizes = micro_batch_candidates(g)
    if own is not None:
        sizes = (own[0], *(m for m in sizes if m > own[0]))
    space = SearchSpace(target_global_batch=g, micro_batch_size=sizes,
                        num_workers=workers or worker_counts(), prefetch_factor=(2, 4), amp=amp,
                        activation_checkpointing=(False, True) if ac else (False,), extras=extras,
                        fixed={k: v for k, v in device_fixed_settings().items() if k in supported},
                        grad_accum=own[1] if own is not None else None)
    return space, opts.left_out


def run_search(target: ProbeTarget, space: SearchSpace, args: argparse.Namespace,
                start: Mapping[str, Setting]) -> SearchResult:
    try:
        return search(target, space, search_settings(args), start=start)
    except AdvisorError as e:
        raise CliError(str(e)) from None


def search_evidence(result: SearchResult) -> dict[str, tuple[str, ...]]:
    """The search's own measurements per knob (its ``probe.<knob>`` steps), as evidence lines."""
    return {f.rule_id.removeprefix("probe."): tuple(f"search: {e}" for e in f.evidence[:1]) for f in result.findings}


def confirm_steps(args: argparse.Namespace, step_s: float | None) -> int:
    """Measured steps per confirmation run: at least ``--confirm-window`` seconds of steady steps at the
    baseline's step time (a probe shorter than a normal run's steady state measures start-up, not speed)."""
    if not step_s or step_s <= 0:
        return args.probe_steps
    return max(args.probe_steps, min(MAX_CONFIRM_STEPS, math.ceil(args.confirm_window / step_s)))


def confirm_alone(target: Any, cands: list[Candidate], args: argparse.Namespace, steps: int) -> Confirmation:
    if not cands:
        return Confirmation()      # nothing to measure: no baseline runs either
    budget, started = args.time_budget, getattr(args, "started", time.perf_counter())
    return confirm(target, cands, rounds=args.confirm_rounds, steps=steps, plan_settings=plan_settings(cands),
                   out_of_time=lambda: budget is not None and time.perf_counter() - started > budget)


def rules_not_covered(x: Any, covered: set[str], drop: set[str]) -> list[Finding]:
    """Rule findings on the baseline profile that the measurements did not cover (no duplicates)."""
    out = []
    for f in apply_rules(x):
        if f.rule_id in drop or (f.settings and set(f.settings) <= covered):
            continue
        if f.expected_gain is not None and f.expected_gain < REPORTABLE_GAIN:
            continue          # a "+0%" recommendation is no recommendation
        out.append(f)
    return out


def cadence(x: Any, args: argparse.Namespace, notes: list[str]) -> list[Finding]:
    mtbf = args.mtbf_hours * 3600 if args.mtbf_hours else None
    f = cadence_finding(x, num_gpus=args.num_gpus, delta_s=args.checkpoint_save_s, mtbf_s=mtbf,
                        max_lost_work_s=args.max_lost_work_min * 60 if args.max_lost_work_min else None)
    if f is None and mtbf is None and x.summary.device != "cuda" and (x.checkpoint_spans_s or args.checkpoint_save_s):
        notes.append(MTBF_NOTE)
    return [f] if f is not None else []
