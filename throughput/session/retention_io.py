"""JSON for the retention records (session schema 2): built from their type hints, strictly.

Raises ValueError/TypeError naming the field; ``session.io`` turns them into one-line
``SessionFormatError``s.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from typing import Any, Union

from throughput.session.retention import Retention


def retention_from_dict(raw: Any, where: str = "retention") -> Retention:
    value = _build(Retention, raw, where)
    assert isinstance(value, Retention)
    return value


def _build(hint: Any, raw: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _record(hint, raw, where)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if raw is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _build(inner, raw, where)
    if origin is tuple:
        if not isinstance(raw, list):
            raise TypeError(f"{where}: expected a list, got {type(raw).__name__}")
        item = typing.get_args(hint)[0]
        return tuple(_build(item, v, f"{where}[{i}]") for i, v in enumerate(raw))
    if origin in (collections.abc.Mapping, dict):
        if not isinstance(raw, dict):
            raise TypeError(f"{where}: expected an object, got {type(raw).__name__}")
        item = typing.get_args(hint)[1]
        return {str(k): _build(item, v, f"{where}.{k}") for k, v in raw.items()}
    return _scalar(hint, raw, where)


def _scalar(hint: Any, raw: Any, where: str) -> Any:
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise TypeError(f"{where}: expected a number, got {raw!r}")
        return float(raw)
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise TypeError(f"{where}: expected an integer, got {raw!r}")
        return raw
    if hint is str:
        if not isinstance(raw, str):
            raise TypeError(f"{where}: expected a string, got {raw!r}")
        return raw
    raise TypeError(f"{where}: unsupported field type {hint!r}")


def _record(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise TypeError(f"{where}: expected an object, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
    kwargs = {k: _build(hints[k], v, f"{where}.{k}") for k, v in raw.items()}
    return cls(**kwargs)
