"""Argument checking for every command: one error style and the validator types the parsers share.

Bad input is answered before any work starts, with one line on stderr that names the problem and the
fix, and exit status 2 (``Parser.error`` raises ``CliError``; ``main`` prints it). ``--help`` is argparse's.
The validators are argparse ``type=`` callables: they raise ``ArgumentTypeError``, which argparse reports
as ``argument --flag: <message>`` through ``Parser.error``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Callable, Iterable, NoReturn, Sequence

from throughput.cli.errors import CliError
from throughput.folders import OUTPUT_MARKERS, markers_in, nearest_existing, write_error


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``<command>: <problem> (see `throughput <command> --help`)``.

    Sub-parsers made by ``add_subparsers`` are of the same class, so every command answers alike."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("throughput").strip()
        problem = f"{command}: {message}" if command else message
        raise CliError(f"{problem} (see `{self.prog} --help`)")

    def parse_command_line(self, args: Sequence[str] | None = None) -> argparse.Namespace:
        """``parse_args``, but an unknown option is reported by the command it was given to (argparse
        leaves it to the top-level parser, whose message names no command)."""
        parsed, extras = self.parse_known_args(args)
        if extras:
            owner = getattr(parsed, COMMAND_PARSER, None) or self
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


COMMAND_PARSER = "_command_parser"   # Namespace attribute: the sub-parser of the command that was given


def mark_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Let each command's parser be found from the parsed namespace (for ``Parser.parse_args``)."""
    for parser in subparsers.choices.values():
        parser.set_defaults(**{COMMAND_PARSER: parser})


def _fail(message: str) -> NoReturn:
    raise argparse.ArgumentTypeError(message)


def integer(minimum: int) -> Callable[[str], int]:
    """An int >= ``minimum``."""
    def check(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            _fail(f"expected an integer >= {minimum}, got {text!r}")
        if value < minimum:
            _fail(f"must be >= {minimum}, got {value}")
        return value
    check.__name__ = f"integer >= {minimum}"
    return check


def number(minimum: float = 0.0, *, inclusive: bool = False) -> Callable[[str], float]:
    """A finite float > ``minimum`` (>= with ``inclusive``): NaN and inf are refused."""
    bound = f"{'>=' if inclusive else '>'} {minimum:g}"

    def check(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            _fail(f"expected a number {bound}, got {text!r}")
        if not math.isfinite(value):
            _fail(f"expected a finite number {bound}, got {text!r}")
        if value < minimum or (value == minimum and not inclusive):
            _fail(f"must be {bound}, got {text}")
        return value
    check.__name__ = f"number {bound}"
    return check


positive_int = integer(1)
nonnegative_int = integer(0)
positive_number = number(0.0)
nonnegative_number = number(0.0, inclusive=True)


def existing_file(text: str) -> Path:
    """A file that exists (a recipe, a plan)."""
    path = Path(text)
    if path.is_dir():
        _fail(f"{text} is a folder; pass a file")
    if not path.is_file():
        _fail(f"{text}: no such file")
    return path


def output_folder(text: str) -> Path:
    """A folder throughput may create or write into: not a file, not a link to a missing folder, a name
    the file system takes, under a folder this user can write."""
    path = Path(text)
    if not text.strip():
        _fail("expected a folder path, got ''")
    try:
        if path.exists() and not path.is_dir():
            _fail(f"{text} is an existing file, not a folder; choose another path")
        if path.is_symlink() and not path.exists():
            _fail(f"{text} is a link to a missing folder; create its target or choose another path")
    except OSError as e:   # a name too long for the file system (ENAMETOOLONG) and the like
        _fail(f"{text}: {e.strerror or e}")
    _check_writable(path if path.is_dir() else nearest_existing(path), text)
    return path


def output_file(text: str) -> Path:
    """A file throughput may write (replacing it): not a folder, in a folder this user can write."""
    path = Path(text)
    if not text.strip():
        _fail("expected a file path, got ''")
    if path.is_dir():
        _fail(f"{text} is a folder; pass a file name, e.g. {path / 'plan.json'}")
    _check_writable(nearest_existing(path.parent), text)
    return path


def key_value(text: str) -> str:
    """``key=value`` (the value may be empty only if the key says so later)."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip():
        _fail(f"expected key=value, got {text!r}")
    return text


def check_fresh_folder(path: Path, flag: str = "--out", *, markers: Iterable[str] = OUTPUT_MARKERS,
                       what: str = "another run's report", allow: str = "") -> None:
    """Refuse (``CliError``) a folder that already holds another run's report, before any work starts,
    so a finished run never loses its report (or overwrites an older one) at the end. ``allow`` names
    how the user may continue instead (e.g. ``pass --resume``)."""
    output_folder_or_error(path, flag)
    found = markers_in(path, markers)
    if found:
        fix = f"{allow}, or choose another {flag}" if allow else f"choose another {flag} or remove it"
        raise CliError(f"{flag} {path} already holds {what} ({', '.join(found[:3])}); {fix} "
                       "(nothing was written)")


def output_folder_or_error(path: Path, flag: str = "--out") -> None:
    """``output_folder`` for values that did not come through argparse (defaults, config keys)."""
    try:
        output_folder(str(path))
    except argparse.ArgumentTypeError as e:
        raise CliError(f"{flag}: {e}") from None


def _check_writable(folder: Path, text: str) -> None:
    if not folder.is_dir():
        _fail(f"cannot create {text}: {folder} is a file, not a folder")
    problem = write_error(folder)
    if problem is not None:
        _fail(f"cannot write under {folder} ({problem}); choose another path")


__all__ = ["COMMAND_PARSER", "Parser", "check_fresh_folder", "existing_file", "integer",
           "key_value", "mark_commands", "nonnegative_int", "nonnegative_number", "number", "output_file",
           "output_folder", "output_folder_or_error", "positive_int", "positive_number"]
