"""``throughput demo``: the whole story on the built-in workload (what `make demo` runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from throughput.cli.args import integer, output_folder, positive_number
from throughput.cli.errors import CliError

# What a demo writes in its folder: only a folder holding nothing else is replaced by the next demo.
DEMO_ENTRIES = frozenset({"naive", "tuned", "advice.txt", "plan.json", "report.md", "summary.json",
                          "throughput.png", "loss.png", "naive_breakdown.png", "tuned_breakdown.png"})


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="profile a naive recipe, advise, run the tuned plan, report before/after")
    p.add_argument("--out", type=output_folder, default="reports/demo", help="report folder (replaced)")
    p.add_argument("--steps", type=integer(5), default=120, help="optimizer steps of each training run")
    p.add_argument("--time-budget", type=positive_number, default=60.0, help="seconds of advisor probing")
    p.set_defaults(handler=run)


def _check_replaceable(out: Path) -> None:
    """The demo deletes and rewrites its folder: never one that holds anything the demo did not write."""
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir()
                     if p.name not in DEMO_ENTRIES and not (p.name.startswith(".") and p.name.endswith(".tmp")))
    if foreign:
        raise CliError(f"--out {out} holds files the demo did not write ({', '.join(foreign[:3])}); the demo "
                       "replaces its folder, so choose another --out (nothing was deleted)")


def run(args: argparse.Namespace) -> int:
    from throughput.demo.run import DemoSettings, run_demo
    _check_replaceable(args.out)
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
