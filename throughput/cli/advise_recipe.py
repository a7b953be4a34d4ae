"""``throughput advise --recipe recipe.py``: search with in-process probes, then measure each change alone
with the real training loop (``throughput train ... --set ...``, ``TrainTarget``), as the user will run it."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any, Mapping

from throughput.advisor.apply import TargetRef
from throughput.advisor.candidates import Start, candidates
from throughput.advisor.confirm import Candidate
from throughput.advisor.rules import MTBF_NOTE, PACKING_CHANGES, checkpoint_plan_finding, job_mtbf, packing_finding
from throughput.advisor.stream_check import duplicated_finding
from throughput.advisor.train_target import TrainTarget
from throughput.cli.advise_output import emit, plan_gain
from throughput.cli.advise_probe import (confirm_alone, confirm_steps, extra_knobs, run_search, search_evidence,
                                         search_space)
from throughput.cli.errors import CliError

from throughput.finding import Finding, Setting, as_int


def run_recipe_advice(args: argparse.Namespace) -> int:
    try:
        from throughput.advisor.recipe import recipe_target, split_check
    except ImportError as e:
        raise CliError(f"--recipe needs the training loop (throughput.loop): {e}") from None
    try:
        target, fingerprint, cfg = recipe_target(args.recipe)
    except ValueError as e:          # RecipeError, ConfigError: one line naming the file and the part
        raise CliError(str(e)) from None
    g = int(args.target_global_batch or cfg["micro_batch_size"] * cfg["grad_accum"])
    notes: list[str] = []
    check = split_check(target.recipe)
    workers = (cfg["num_workers"],) if check is not None and check.verdict == "duplicated" else None
    if check is not None:
        notes.append("IterableDataset: " + "; ".join(check.evidence))
    space, left_out = search_space(g, target.supported, extra_knobs(args, target.supported), workers)
    start = {k: cfg[k] for k in ("micro_batch_size", "num_workers", "amp") if k != "micro_batch_size"
             or cfg[k] in space.micro_batch_size}
    result = run_search(target, space, args, start)
    caveat = None if check is None or check.verdict == "split" else "; ".join(check.evidence)
    cands = candidates(Start(kind="recipe", config=cfg, stream_caveat=caveat), result.config,
                       search_evidence(result), space.extras)
    packing, packing_code = _packing(target.recipe, result.config)
    cands += packing
    runner = TrainTarget(args.recipe, timeout_s=args.probe_timeout)
    step_s = g / result.baseline.result.samples_per_s if result.baseline.result.samples_per_s else None
    steps = confirm_steps(args, step_s)
    conf = confirm_alone(runner, cands, args, steps)
    findings: list[Finding] = conf.findings + packing_code + _checkpoint(args, target, result.config, cfg, step_s, notes)
    if check is not None and check.verdict == "duplicated":
        findings.append(duplicated_finding(check))
    header = [f"advice for recipe {args.recipe}: global batch {g} samples; {len(result.trials)} search probes, "
              f"then {args.confirm_rounds} interleaved round(s) of {steps}-step `throughput train` runs measuring "
              "each change alone"]
    ref = TargetRef(kind="recipe", path=str(args.recipe))
    off = () if cfg["ckpt_every_steps"] or cfg["ckpt_every_s"] else ("ckpt_every_steps",)
    return emit(args, findings, ref, header, [*notes, *left_out, *result.notes, *conf.notes],
                plan_gain(conf, cands, findings), fingerprint=fingerprint, keep_off=off,
                measurement={"confirm_rounds": args.confirm_rounds, "confirm_steps": steps})


def _packing(recipe: Any, config: Mapping[str, Setting]) -> tuple[list[Candidate], list[Finding]]:
    """Packing, when the observed lengths waste padding: a candidate measured in loss-bearing tokens/s (a
    packed row holds several samples) if the recipe builds packed rows on request, else a code change."""
    from throughput.advisor.packing_trial import recipe_honors_packing
    from throughput.advisor.recipe import observed_lengths
    f = packing_finding(observed_lengths(recipe), as_int(config["micro_batch_size"]))
    if f is None:
        return [], []
    known = {k: v for k, v in config.items() if k in ("micro_batch_size", "grad_accum")}
    if not recipe_honors_packing(recipe, known):
        code = ("build packed rows with throughput.packing (PackedDataset + PackingCollator, docs/packing.md) in "
                "build_datasets when config.packing is true; then --set packing=true")
        return [], [replace(f, settings={}, code_change=code,
                            evidence=f.evidence + ("this recipe's build_datasets ignores config.packing",))]
    return [Candidate(rule_id="probe.packing", title="Pack sequences (--set packing=true)", settings={"packing": True},
                      evidence=f.evidence, metric="tokens", changes_training=PACKING_CHANGES)], []


def _checkpoint(args: argparse.Namespace, target: Any, config: Mapping[str, Setting], cfg: Mapping[str, Any],
                step_s: float | None, notes: list[str]) -> list[Finding]:
    """Young/Daly cadence from a measured save, with a failure rate for the hardware in use; a recipe
    that turned checkpointing off is told so (and the plan leaves it off)."""
    import torch
    from throughput.advisor.checkpoint import plan_checkpoints
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mtbf = job_mtbf(device, args.num_gpus or 1, args.mtbf_hours * 3600 if args.mtbf_hours else None)
    if mtbf is None:
        notes.append(MTBF_NOTE)
        return []
    ckpt_s = args.checkpoint_save_s or target.measure_checkpoint_s(config)
    if not ckpt_s or not step_s:
        return []
    plan = plan_checkpoints(delta_s=ckpt_s, step_time_s=step_s, num_gpus=args.num_gpus or 1,
                            mtbf_s=args.mtbf_hours * 3600 if args.mtbf_hours else None,
                            max_lost_work_s=args.max_lost_work_min * 60 if args.max_lost_work_min else None)
    was_off = not (cfg["ckpt_every_steps"] or cfg["ckpt_every_s"])
    return [checkpoint_plan_finding(plan, measured=args.checkpoint_save_s is None, was_off=was_off)]
