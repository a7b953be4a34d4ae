"""``throughput demo``: the whole story on the built-in workload (what `make demo` runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from throughput.cli.errors import CliError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="profile a naive recipe, advise, run the tuned plan, report before/after")
    p.add_argument("--out", type=Path, default=Path("reports/demo"), help="report folder (replaced)")
    p.add_argument("--steps", type=int, default=120, help="optimizer steps of each training run")
    p.add_argument("--time-budget", type=float, default=60.0, help="seconds of advisor probing")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from throughput.demo.run import DemoSettings, run_demo
    try:
        settings = DemoSettings(out=args.out, steps=args.steps, time_budget_s=args.time_budget)
    except ValueError as e:
        raise CliError(str(e)) from None
    story = run_demo(settings, log=lambda line: print(line, flush=True))
    speed = f"{story.speedup:.2f}x" if story.speedup is not None else "n/a"
    print(f"\ntuned vs naive: {speed} tokens/s "
          f"({story.before.tokens_per_s or 0:.0f} -> {story.after.tokens_per_s or 0:.0f}); "
          f"token utilization {story.before.token_utilization or 0:.0%} -> {story.after.token_utilization or 0:.0%}")
    print(f"report: {settings.out / 'report.md'}")
    if not story.meets_target:
        print(f"warning: the tuned run is below the {2.0:.0f}x target on this machine", file=sys.stderr)
    return 0
