"""``throughput advise script.py`` and ``--recipe``: the modes that run code (probes), kept apart from the
rules-only path so that ``throughput advise RUN.json`` imports no torch."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from throughput.advisor.findings import Finding, Setting
from throughput.advisor.plan import advice_to_dict, build_plan, save_plan
from throughput.advisor.rules import apply_rules, cadence_finding, rule_input
from throughput.advisor.search import AdvisorError, SearchResult, search
from throughput.advisor.space import SearchSettings, SearchSpace, micro_batch_candidates
from throughput.advisor.trials import ProbeTarget, describe_config
from throughput.cli.errors import CliError
from throughput.report.advice import render_advice


def _workers() -> tuple[int, ...]:
    cores = os.cpu_count() or 1
    return tuple(sorted({0, 1, 2, *(w for w in (4, 8, 16) if w <= cores)}))


def _settings(args: argparse.Namespace) -> SearchSettings:
    return SearchSettings(probe_steps=args.probe_steps, memory_budget_bytes=args.memory_budget,
                          time_budget_s=args.time_budget)


def _global_batch(args: argparse.Namespace, samples_per_step: float | None, tokens_per_sample: float | None) -> int:
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


def _extras(args: argparse.Namespace, supported: frozenset[str]) -> tuple[str, ...]:
    names = tuple(n.strip() for n in (args.candidates or "").split(",") if n.strip())
    unknown = [n for n in names if n not in supported or n in ("micro_batch_size", "num_workers", "amp")]
    if unknown:
        raise CliError(f"--candidates {','.join(unknown)}: not an on/off knob this target can apply "
                       f"(it applies: {', '.join(sorted(supported))})")
    return names


def _space(g: int, supported: frozenset[str], extras: tuple[str, ...] = ()) -> SearchSpace:
    from throughput.advisor.workload import device_fixed_settings, supported_precisions
    amp = supported_precisions() if "amp" in supported else ("fp32",)
    ac = (False, True) if "activation_checkpointing" in supported else (False,)
    return SearchSpace(target_global_batch=g, micro_batch_size=micro_batch_candidates(g), num_workers=_workers(),
                       prefetch_factor=(2, 4), amp=amp, activation_checkpointing=ac, extras=extras,
                       fixed={k: v for k, v in device_fixed_settings().items() if k in supported})


def _measured(result: SearchResult) -> list[Finding]:
    r, cfg = result.result, result.config
    evidence = [f"{len(result.trials)} probes in {result.elapsed_s:.1f} s; tuned {r.samples_per_s:.4g} samples/s vs "
                f"baseline {result.baseline.result.samples_per_s:.4g} ({describe_config(result.baseline.config)})"]
    if result.predicted_peak_bytes and r.peak_memory_bytes:
        err = abs(result.predicted_peak_bytes - r.peak_memory_bytes) / r.peak_memory_bytes
        evidence.append(f"peak memory at micro-batch {cfg['micro_batch_size']}: predicted "
                        f"{result.predicted_peak_bytes / 2**20:.1f} MiB, measured {r.peak_memory_bytes / 2**20:.1f} "
                        f"MiB ({err:.1%} off)")
    base_sps = result.baseline.result.samples_per_s or 0.0
    gain = (r.samples_per_s or 0.0) / base_sps - 1.0 if base_sps else None
    keys = ("micro_batch_size", "grad_accum")
    return [Finding(rule_id="probe.batch", title=f"Micro-batch {cfg['micro_batch_size']} x {cfg['grad_accum']} "
                    "accumulation steps (validated by a run)", evidence=tuple(evidence), expected_gain=gain,
                    confidence="high", change=" ".join(f"--set {k}={cfg[k]}" for k in keys),
                    settings={k: cfg[k] for k in keys})]


def _plan_base(config: Mapping[str, Setting], supported: frozenset[str]) -> dict[str, Setting]:
    """The tuned settings the target could apply (plus grad_accum); loader-worker options only with workers."""
    base = {k: v for k, v in config.items() if k in supported or k == "grad_accum"}
    if not base.get("num_workers"):
        base.pop("prefetch_factor", None)
        base.pop("persistent_workers", None)
    return base


def _emit(args: argparse.Namespace, findings: list[Finding], base: Mapping[str, Setting], header: list[str],
          notes: tuple[str, ...], result: SearchResult | None, fingerprint: str | None = None) -> int:
    plan = build_plan(findings, measured=base, model_fingerprint=fingerprint,
                      baseline_samples_per_s=result.baseline.result.samples_per_s if result else None,
                      tuned_samples_per_s=result.result.samples_per_s if result else None)
    print(render_advice(advice_to_dict(plan), header, notes), end="")
    if args.plan_out is not None:
        save_plan(plan, args.plan_out)
        print(f"plan written to {args.plan_out}", file=sys.stderr)
    return 0


def _run_search(target: ProbeTarget, space: SearchSpace, args: argparse.Namespace,
                start: Mapping[str, Setting]) -> SearchResult:
    try:
        return search(target, space, _settings(args), start=start)
    except AdvisorError as e:
        raise CliError(str(e)) from None


def advise_script(args: argparse.Namespace) -> int:
    from throughput.advisor.script import ScriptTarget
    script = Path(args.target)
    if not script.is_file():
        raise CliError(f"{script}: no such script")
    target = ScriptTarget(script, args.args, timeout_s=args.probe_timeout)
    base = target.run({}, args.probe_steps)
    session = target.last_session
    if session is None or not session.steps:
        why = base.error or "no training steps were seen"
        raise CliError(f"{script}: the profiling run gave nothing to tune ({why}); check that the script "
                       "trains (calls loss.backward() and optimizer.step())")
    x = rule_input(session)
    r = x.summary.rates
    batch = x.context.get("batch_size")
    if isinstance(batch, int) and batch > 0:   # the DataLoader's batch x micro-batches per optimizer step
        per_step = batch * (x.summary.micro_steps_per_step or 1.0)
    else:
        per_step = (r.samples_per_s or 0.0) * (x.summary.step_time.median_s if x.summary.step_time else 0.0)
    tokens_per_sample = r.tokens_per_s / r.samples_per_s if r.tokens_per_s and r.samples_per_s else None
    g = _global_batch(args, per_step or None, tokens_per_sample)
    ctx = x.context
    start: dict[str, Setting] = {"micro_batch_size": int(ctx.get("batch_size", 0)) or None,
                                 "num_workers": int(ctx.get("num_workers", 0))}
    space = _space(g, ScriptTarget.supported, _extras(args, ScriptTarget.supported))
    if start["micro_batch_size"] not in space.micro_batch_size:
        start.pop("micro_batch_size")
    result = _run_search(target, space, args, start)
    rules = [f for f in apply_rules(x) if not set(f.settings) & set(result.config)]
    ckpt = cadence_finding(x, num_gpus=args.num_gpus, delta_s=args.checkpoint_save_s,
                           mtbf_s=args.mtbf_hours * 3600 if args.mtbf_hours else None,
                           max_lost_work_s=args.max_lost_work_min * 60 if args.max_lost_work_min else None)
    alloc = _allocator(target, result, args, session)
    rules = [f for f in rules if not (alloc.measured and f.rule_id == "host.page_faults")]  # measured wins
    findings = list(result.findings) + _measured(result) + rules + ([ckpt] if ckpt else []) + (
        [alloc.finding] if alloc.finding else [])
    header = [f"advice for {script} ({x.summary.device_name}): global batch {g} samples, "
              f"{len(result.trials) + len(alloc.trials)} probes of {args.probe_steps} steps"]
    notes = tuple(result.notes) + ((alloc.note,) if alloc.note else ())
    return _emit(args, findings, _plan_base(result.config, ScriptTarget.supported), header, notes, result)


def _allocator(target: Any, result: SearchResult, args: argparse.Namespace, session: Any) -> Any:
    """The glibc malloc A/B at the tuned configuration (skipped past the time budget)."""
    from throughput.advisor.allocator_trial import AllocatorTrial, allocator_trial
    budget = args.time_budget
    if budget is not None and result.elapsed_s > budget:
        return AllocatorTrial(finding=None, note="allocator probe skipped: time budget reached")
    return allocator_trial(target, result.config, _settings(args), baseline_session=session)


def _measure_packing(recipe: Any, config: Mapping[str, Setting], steps: int) -> Finding | None:
    """Padding waste was seen: if the recipe can pack, measure it (an A/B of two short loop runs)."""
    from throughput.advisor.packing_trial import packing_trial
    from throughput.loop.config import TrainConfig
    known = set(TrainConfig.__dataclass_fields__)
    return packing_trial(recipe, {k: v for k, v in config.items() if k in known}, steps=max(3, steps))


def advise_recipe(args: argparse.Namespace) -> int:
    try:
        from throughput.advisor.recipe import recipe_target
    except ImportError as e:
        raise CliError(f"--recipe needs the training loop (throughput.loop): {e}") from None
    try:
        target, fingerprint, defaults = recipe_target(args.recipe)
    except ValueError as e:          # RecipeError, ConfigError: one line naming the file and the part
        raise CliError(str(e)) from None
    g = int(args.target_global_batch or defaults.get("micro_batch_size", 8) * defaults.get("grad_accum", 1))
    space = _space(g, target.supported, _extras(args, target.supported))
    start = {"micro_batch_size": defaults["micro_batch_size"]} if defaults["micro_batch_size"] in space.micro_batch_size else {}
    result = _run_search(target, space, args, start)
    ckpt_s = args.checkpoint_save_s or target.measure_checkpoint_s(result.config)
    findings = list(result.findings) + _measured(result)
    step_s = g / result.result.samples_per_s if result.result.samples_per_s else None
    if ckpt_s and step_s:
        from throughput.advisor.checkpoint import plan_checkpoints
        from throughput.advisor.rules import checkpoint_plan_finding
        plan = plan_checkpoints(delta_s=ckpt_s, step_time_s=step_s, num_gpus=args.num_gpus or 1,
                                mtbf_s=args.mtbf_hours * 3600 if args.mtbf_hours else None,
                                max_lost_work_s=args.max_lost_work_min * 60 if args.max_lost_work_min else None)
        findings.append(checkpoint_plan_finding(plan, measured=args.checkpoint_save_s is None))
    from throughput.advisor.recipe import observed_lengths
    from throughput.advisor.rules import packing_finding
    packing = packing_finding(observed_lengths(target.recipe), int(result.config["micro_batch_size"]))  # type: ignore[arg-type]
    if packing is not None:
        findings.append(_measure_packing(target.recipe, result.config, args.probe_steps) or packing)
    header = [f"advice for recipe {args.recipe}: global batch {g} samples, {len(result.trials)} probes"]
    return _emit(args, findings, _plan_base(result.config, target.supported), header, result.notes, result,
                 fingerprint)


