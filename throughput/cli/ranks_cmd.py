"""``throughput ranks OUT``: merge the per-rank sessions under OUT/rank-*/ into one report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from throughput.capture.distributed import rank_session_paths, wait_for_rank_sessions
from throughput.cli.args import nonnegative_int, positive_number
from throughput.cli.errors import CliError
from throughput.analysis.ranks import RankSummary
from throughput.report.ranks import RANKS_RENDERERS, write_ranks_report
from throughput.session.io import SessionFormatError, load_session


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ranks", help="merge a multi-rank run (OUT/rank-*/session.json) into one report")
    p.add_argument("out", type=Path, help="the run's output folder, holding rank-<r>/ subfolders")
    p.add_argument("--format", choices=sorted(RANKS_RENDERERS), default="table", help="output format")
    p.add_argument("--wait-for", type=nonnegative_int, default=0, metavar="N",
                   help="wait until N rank sessions exist (up to --timeout seconds) before merging")
    p.add_argument("--timeout", type=positive_number, default=120.0, help="seconds to wait for --wait-for")
    p.set_defaults(handler=run)


def merge(out: Path, wait_for: int = 0, timeout_s: float = 120.0) -> RankSummary:
    """Merge the rank sessions under ``out`` and write ranks.md/ranks.json/trace.json there. Raises
    CliError when there is nothing to merge."""
    paths = wait_for_rank_sessions(out, wait_for, timeout_s) if wait_for > 0 else rank_session_paths(out)
    if not paths:
        raise CliError(f"{out}: no rank-<r>/session.json found; run under torchrun with --out {out}")
    try:
        sessions = [load_session(p) for p in paths]
        return write_ranks_report(sessions, out)
    except (SessionFormatError, ValueError) as e:
        raise CliError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    print(RANKS_RENDERERS[args.format](merge(args.out, args.wait_for, args.timeout)), end="")
    return 0
