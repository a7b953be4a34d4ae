"""``throughput compare A.json B.json``: per-phase times, shares and throughput side by side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from throughput.analysis.compare import compare
from throughput.cli.errors import CliError
from throughput.report.compare import COMPARE_RENDERERS
from throughput.session.io import SessionFormatError, load_session


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare two saved runs: B against the baseline A")
    p.add_argument("a", type=Path, help="baseline session.json (or its report folder)")
    p.add_argument("b", type=Path, help="session.json (or report folder) to compare against A")
    p.add_argument("--format", choices=sorted(COMPARE_RENDERERS), default="table", help="output format")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        a, b = load_session(args.a), load_session(args.b)
    except SessionFormatError as e:
        raise CliError(str(e)) from None
    try:
        comparison = compare(a, b)
    except ValueError as e:
        raise CliError(str(e)) from None
    print(COMPARE_RENDERERS[args.format](comparison), end="")
    return 0
