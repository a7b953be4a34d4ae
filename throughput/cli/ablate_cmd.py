"""``throughput ablate RECIPE.py --vary key=v1,v2 [--vary ...] [--repeats N] [--set k=v] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from throughput.cli.args import check_fresh_folder, existing_file, key_value, output_folder, positive_int
from throughput.cli.errors import CliError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ablate", help="one-variable-at-a-time runs from the baseline, with a noise estimate",
                       description="Runs the baseline --repeats times (seeds seed, seed+1, ...) to measure "
                                   "noise, then each --vary value alone with the baseline seed; writes "
                                   "ablation.md and ablation.json in --out.")
    p.add_argument("recipe", type=existing_file, help="recipe .py file")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2", required=True, type=key_value,
                   help="a config key and the values to try (repeatable)")
    p.add_argument("--repeats", type=positive_int, default=3, help="baseline runs for the noise estimate (default 3)")
    p.add_argument("--plan", type=existing_file, default=None, help="tuned plan JSON used as the baseline")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", type=key_value,
                   help="baseline override (repeatable), e.g. --set steps=100 for short runs")
    p.add_argument("--out", type=output_folder, default="runs/ablate", help="folder for the runs and the table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from throughput import loop
    from throughput.loop.ablate import render_markdown, run_ablation
    from throughput.loop.checkpoint import CheckpointError
    from throughput.loop.loop import run_training

    try:   # every key and value checked before the recipe is imported or any run starts
        overrides = loop.parse_set_args(args.sets)
        loop.TrainConfig().with_overrides(overrides)
        vary = _parse_vary(args.vary)
        for key, values in vary.items():
            for value in values:
                loop.TrainConfig().with_overrides({**overrides, key: value})
        check_fresh_folder(args.out, what="another ablation or run",
                           markers=("ablation.md", "ablation.json", "run.json", "session.json", "report.md"))
        _check_no_runs(args.out)
        recipe, base, plan = loop.resolve(args.recipe, args.plan, overrides, args.out)
        comparison = run_ablation(
            base, vary, args.repeats, args.out,
            run_one=lambda cfg: run_training(recipe, cfg, progress=False, plan=plan),
            log=lambda line: print(line, file=sys.stderr))
    except (loop.ConfigError, loop.PlanError, loop.RecipeError, CheckpointError) as e:
        raise CliError(str(e)) from None
    print(render_markdown(comparison), end="")
    return 0


def _check_no_runs(out: Path) -> None:
    """The ablation's run folders are ``NN-<variant>``: an earlier ablation's would be refused mid-way."""
    earlier = sorted(p.name for p in out.glob("[0-9][0-9]-*") if (p / "run.json").exists()) if out.is_dir() else []
    if earlier:
        raise CliError(f"--out {out} already holds another ablation's runs ({', '.join(earlier[:3])}); "
                       "choose another --out or remove it (nothing was written)")


def _parse_vary(items: list[str]) -> dict[str, list[str]]:
    from throughput.loop.ablate import parse_vary

    return parse_vary(items)
