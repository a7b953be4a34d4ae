"""``throughput report RUN.json``: re-render a saved session."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from throughput.analysis.summary import summarize
from throughput.cli.args import nonnegative_int
from throughput.cli.errors import CliError
from throughput.report import RENDERERS
from throughput.session.io import SessionFormatError, load_session


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="re-render a saved session (session.json or its folder)")
    p.add_argument("session", type=Path, help="a session.json written by throughput, or its report folder")
    p.add_argument("--format", choices=sorted(RENDERERS), default="table", help="output format")
    p.add_argument("--warmup-steps", type=nonnegative_int, default=None, help="override the warm-up steps excluded")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        session = load_session(args.session)
    except SessionFormatError as e:
        raise CliError(str(e)) from None
    if args.warmup_steps is not None:
        session = session.with_info(warmup_steps=args.warmup_steps)
    try:
        summary = summarize(session)
    except ValueError as e:   # e.g. a longer warm-up than a long run's session kept in detail
        raise CliError(f"report: {e}") from None
    print(RENDERERS[args.format](summary), end="")
    return 0
