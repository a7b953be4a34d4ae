"""Typed validation of JSON-like data against frozen dataclasses' type hints (a torch-free leaf package).

Every file throughput reads back (sessions, plans, recipe configs, ``--set`` values) is checked field by
field against the types its records declare, so a wrong-typed, truncated or hand-edited file fails with
one line that names the field and where it sits in the file::

    steps[3].phase_s.forward: expected a number, got "fast"

The decoders are built once per type from ``typing.get_type_hints`` (no per-record interpretation of
hints), so a new record type, or a new field, is validated without code here. Supported hints: ``bool``,
``int``, ``float``, ``str``, ``Enum`` subclasses, ``X | None`` and other unions, ``tuple[X, ...]``,
``list[X]``, ``Mapping``/``dict[K, V]``, ``Literal[...]``, ``Any`` and nested dataclasses.

Rules, the same for every file:

- ``bool`` is never a number and a number is never a ``bool``; ``int`` accepts integers only (no
  ``3.5``, no ``"3"``) within 64 bits; ``float`` accepts integers and floats.
- Non-finite floats (NaN, inf), or floats beyond a bound, are refused where the ``finite`` policy says
  so (a function of the field name; for sessions: fields
  whose names carry a unit, since a duration or a byte count cannot be NaN; for settings: everywhere).
- Objects may not carry unknown fields; fields without a default are required.
- ``ValueError``/``TypeError`` raised by a record's own ``__post_init__`` is reported at the record's path.

The path is built only when something fails (each container adds its key while the error propagates), so
a valid file costs one call per value.
"""

from __future__ import annotations

import math
import typing
from typing import Any, Mapping

from throughput.validation.decoders import FinitePolicy, Limit, decoder, field_decoders, is_union, unknown_field
from throughput.validation.errors import DecodeError, describe


def all_finite(name: str) -> Limit:
    """Policy for settings: every float must be finite."""
    return math.inf


def none_finite(name: str) -> Limit:
    """Policy for free-form measurements: NaN and inf are values like any other."""
    return None


def decode(tp: Any, raw: Any, *, finite: FinitePolicy = all_finite, path: str = "") -> Any:
    """``raw`` (parsed JSON or plain Python values) checked and built as ``tp``. Raises DecodeError whose
    message starts with ``path`` and the location inside ``raw``."""
    try:
        return decoder(tp, math.inf, finite)(raw)
    except DecodeError as e:
        raise (e.at("." + path) if path else e) from None


def decode_fields(cls: type, raw: Any, *, finite: FinitePolicy = all_finite, path: str = "",
                  noun: str = "field") -> dict[str, Any]:
    """Some fields of dataclass ``cls`` (a partial mapping, e.g. a plan's settings), each checked against
    its type; unknown keys are refused with the known ones listed. Returns the decoded values."""
    try:
        if not isinstance(raw, Mapping):
            raise DecodeError(f"expected an object, got {describe(raw)}")
        fields = field_decoders(cls, finite)
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in fields:
                raise DecodeError(unknown_field(key, fields, noun))
            try:
                out[key] = fields[key](value)
            except DecodeError as e:
                raise e.at(f".{key}") from None
        return out
    except DecodeError as e:
        raise (e.at("." + path) if path else e) from None


def parse_text(tp: Any, text: str, *, finite: bool = True) -> Any:
    """A command-line string read as ``tp`` (int, float, bool, str, Enum, Literal, ``X | None``).
    Raises DecodeError naming what was expected."""
    args = typing.get_args(tp)
    if is_union(tp):
        members = [a for a in args if a is not type(None)]
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        if len(members) == 1:
            return parse_text(members[0], text, finite=finite)
    value: Any = text.strip()
    if tp is bool:
        lowered = value.lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise DecodeError(f"expected true or false, got {describe(text)}")
    if tp is int:
        try:
            value = int(value)
        except ValueError:
            raise DecodeError(f"expected an integer, got {describe(text)}") from None
    elif tp is float:
        try:
            value = float(value)
        except ValueError:
            raise DecodeError(f"expected a number, got {describe(text)}") from None
    return decode(tp, value, finite=all_finite if finite else none_finite)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})




__all__ = ["DecodeError", "FinitePolicy", "Limit", "all_finite", "decode", "decode_fields", "describe", "none_finite",
           "parse_text"]
