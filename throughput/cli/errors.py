"""Errors that the CLI turns into one line on stderr and an exit status."""

from __future__ import annotations


class CliError(Exception):
    """A user-facing problem: the message names it and the fix. Exit status 2 by default."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
