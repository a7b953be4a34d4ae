"""``throughput ablate RECIPE.py --vary key=v1,v2 [--vary ...] [--repeats N] [--set k=v] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from throughput.cli.errors import CliError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ablate", help="one-variable-at-a-time runs from the baseline, with a noise estimate",
                       description="Runs the baseline --repeats times (seeds seed, seed+1, ...) to measure "
                                   "noise, then each --vary value alone with the baseline seed; writes "
                                   "ablation.md and ablation.json in --out.")
    p.add_argument("recipe", type=Path, help="recipe .py file")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2", required=True,
                   help="a config key and the values to try (repeatable)")
    p.add_argument("--repeats", type=int, default=3, help="baseline runs for the noise estimate (default 3)")
    p.add_argument("--plan", type=Path, default=None, help="tuned plan JSON used as the baseline")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="baseline override (repeatable), e.g. --set steps=100 for short runs")
    p.add_argument("--out", type=Path, default=Path("runs/ablate"), help="folder for the runs and the table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from throughput import loop
    from throughput.loop.ablate import render_markdown, run_ablation
    from throughput.loop.checkpoint import CheckpointError
    from throughput.loop.loop import run_training

    try:
        overrides = loop.parse_set_args(args.sets)
        vary = _parse_vary(args.vary)
        for key, values in vary.items():      # every key and value checked before the recipe loads
            for value in values:
                loop.TrainConfig().with_overrides({**overrides, key: value})
        recipe, base, plan = loop.resolve(args.recipe, args.plan, overrides, args.out)
        comparison = run_ablation(
            base, vary, args.repeats, args.out,
            run_one=lambda cfg: run_training(recipe, cfg, progress=False, plan=plan),
            log=lambda line: print(line, file=sys.stderr))
    except (loop.ConfigError, loop.PlanError, loop.RecipeError, CheckpointError) as e:
        raise CliError(str(e)) from None
    print(render_markdown(comparison), end="")
    return 0


def _parse_vary(items: list[str]) -> dict[str, list[str]]:
    from throughput.loop.ablate import parse_vary

    return parse_vary(items)
