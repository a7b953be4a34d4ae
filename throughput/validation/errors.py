"""The error every decoder raises, and how a value is shown in its one-line message."""

from __future__ import annotations

from typing import Any, Mapping


class DecodeError(ValueError):
    """A value that does not match its declared type. ``str(e)`` is ``"<path>: <problem>"``."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self._segments: list[str] = []   # innermost first; added while the error propagates

    def at(self, segment: str) -> "DecodeError":
        self._segments.append(segment)
        return self

    @property
    def path(self) -> str:
        return "".join(reversed(self._segments)).lstrip(".")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


def describe(value: Any) -> str:
    """A value as a reader of the JSON file sees it: ``"fast"``, ``null``, ``an object``, ``3.5``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return '"' + text.replace('"', '\\"') + '"'
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"
