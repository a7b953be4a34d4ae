"""``throughput train RECIPE.py [--plan PLAN.json] [--set key=value ...] [--out DIR] [--resume]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from throughput.cli.args import (check_fresh_folder, existing_file, key_value, output_folder, output_folder_or_error,
                                  positive_int)
from throughput.cli.errors import CliError
from throughput.folders import RUN_FILES

EXIT_TERMINATED = 143  # 128 + SIGTERM: the scheduler's convention for "stopped, checkpoint saved"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="run a recipe with the tuned training loop (checkpoints, diagnosis)",
                       description="Train a recipe file (build_model, build_datasets, loss_fn); "
                                   "see docs/training.md. Config: recipe < --plan < --set < --out.")
    p.add_argument("recipe", type=existing_file, help="recipe .py file")
    p.add_argument("--plan", type=existing_file, default=None, help="tuned plan JSON (config keys -> values)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", type=_set_or_help,
                   help="override one config key (repeatable); `--set help` lists the keys")
    p.add_argument("--out", type=output_folder, default=None, help="run folder (checkpoints, metrics.jsonl, ...)")
    p.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint in --out")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: apply changed keys that alter only the rest of the run (lr schedule, "
                        "AdamW hyper-parameters, clipping, precision); batch shape, seed and data order never")
    p.add_argument("--max-steps", type=positive_int, default=None, metavar="N",
                   help="stop after N updates in this call, with a checkpoint (resume continues)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from throughput import loop
    from throughput.loop.checkpoint import CheckpointError
    from throughput.loop.config import field_docs
    from throughput.loop.resume import ResumeConfigError

    if args.sets == ["help"]:
        print("\n".join(f"{k}: {v}" for k, v in field_docs().items()))
        return 0
    try:
        overrides = loop.parse_set_args(args.sets)
        loop.TrainConfig().with_overrides(overrides)   # every key and value checked before the recipe loads
        recipe, cfg, plan = loop.resolve(args.recipe, args.plan, overrides, args.out)
        _check_run_folder(Path(cfg.out_dir), args.resume)
        from throughput.loop.loop import run_training
        result = run_training(recipe, cfg, resume=args.resume, progress=not args.quiet, plan=plan,
                              max_steps=args.max_steps, allow_config_change=args.allow_config_change)
    except (loop.ConfigError, loop.PlanError, loop.RecipeError, CheckpointError, ResumeConfigError) as e:
        raise CliError(str(e)) from None
    print(summary_lines(result), file=sys.stderr)
    if result.end == "terminated":
        return EXIT_TERMINATED
    return 1 if result.end == "nonfinite" else 0


# A training run folder: another run's report or checkpoints there would be overwritten or mixed in.


def _check_run_folder(out: Path, resume: bool) -> None:
    """Before the model is built: a file, an unwritable path, or (without --resume) a folder holding
    another run is refused with one line; the loop checks again that a resumed folder is this run's."""
    if resume:
        output_folder_or_error(out)
    else:
        check_fresh_folder(out, markers=RUN_FILES, what="a training run", allow="pass --resume to continue it")


def _set_or_help(text: str) -> str:
    return text if text == "help" else key_value(text)


def summary_lines(result: Any) -> str:
    """A few lines: how it ended, losses, throughput, clipping, findings."""
    lines = [f"train: {result.end} at step {result.step}"
             + (f" (resumed from {result.resumed_from})" if result.resumed_from is not None else "")
             + f"; run folder {result.out_dir}"]
    if result.final_train_loss is not None:
        val = f", val {result.final_val_loss:.4f}" if result.final_val_loss is not None else ""
        lines.append(f"  loss {result.final_train_loss:.4f}{val}; clipped {result.clip_count} of {result.step} steps"
                     + (f"; {result.samples_per_s:,.1f} samples/s" if result.samples_per_s else "")
                     + (f"; {result.tokens_per_s:,.0f} tokens/s" if result.tokens_per_s else ""))
    for f in result.findings:
        lines.append(f"  [{f.rule_id}] steps {f.first_step}-{f.last_step}: {f.message}")
        lines.append(f"      -> {f.action}")
    return "\n".join(lines)
