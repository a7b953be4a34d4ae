"""``throughput`` command line: parse and dispatch, nothing else."""

from __future__ import annotations

import sys
from typing import Sequence

from throughput.cli.args import Parser, mark_commands
from throughput.cli.errors import CliError

# Subcommand modules import in build_parser(), inside entry_point's Ctrl-C handling.
SUBCOMMANDS = ("profile_cmd", "report_cmd", "compare_cmd", "ranks_cmd", "advise_cmd", "train_cmd", "ablate_cmd",
               "demo_cmd")


def build_parser() -> Parser:
    import importlib
    parser = Parser(
        prog="throughput",
        description="Find where each PyTorch training step's time goes, then run a tuned recipe.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"throughput.cli.{name}").add_parser(sub)
    mark_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_command_line(argv)
        return int(args.handler(args))
    except CliError as e:
        print(f"throughput: error: {e}", file=sys.stderr)
        return e.exit_code


def entry_point() -> None:
    """The console script. Ctrl-C outside the profiled script (while starting, before the script runs)
    ends with status 130 and one line, never a traceback."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("\nthroughput: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
