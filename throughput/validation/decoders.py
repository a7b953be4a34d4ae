"""Decoders built once per (type, finiteness, policy) from type hints; see ``throughput.validation``.

Each decoder checks a value and returns it built as its type, or raises ``DecodeError``; containers add
their key or index to the error's path while it propagates, so valid data never pays for paths.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from typing import Any, Callable, Mapping

from throughput.validation.errors import DecodeError, describe

INT64_MAX = 2**63 - 1

Decoder = Callable[[Any], Any]
# Field name -> what its floats may be: None, any float (NaN and inf included); a number ``b``, finite
# and within [-b, b] (math.inf: any finite float).
Limit = float | None
FinitePolicy = Callable[[str], Limit]



@functools.lru_cache(maxsize=None)
def decoder(tp: Any, finite: Limit, policy: FinitePolicy) -> Decoder:
    if tp is Any or tp is object:
        return lambda v: v
    if tp is bool:
        return _bool
    if tp is int:
        return _int
    if tp is float:
        return _float if finite is None else _finite_float if finite == math.inf else _bounded_float(finite)
    if tp is str:
        return _str
    if tp is type(None):
        return _none
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass(tp, policy)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if is_union(tp):
        return _union(tuple(decoder(a, finite, policy) for a in args), args)
    if origin is typing.Literal:
        return _literal(args)
    if origin is tuple:
        return _sequence(decoder(args[0], finite, policy), tuple) if len(args) == 2 and args[1] is ... else \
            _fixed_tuple(tuple(decoder(a, finite, policy) for a in args))
    if origin in (list, typing.Sequence, _abc("Sequence")):
        return _sequence(decoder(args[0] if args else Any, finite, policy), list)
    if origin in (dict, typing.Mapping, _abc("Mapping")):
        key_tp, value_tp = args if args else (Any, Any)
        return _mapping(decoder(key_tp, finite, policy), decoder(value_tp, finite, policy))
    raise TypeError(f"throughput.validation cannot check type hint {tp!r}")


def _abc(name: str) -> Any:
    import collections.abc
    return getattr(collections.abc, name)


def is_union(tp: Any) -> bool:
    return typing.get_origin(tp) is typing.Union or isinstance(tp, types.UnionType)


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise DecodeError(f"expected true or false, got {describe(v)}")


def _int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        if -INT64_MAX - 1 <= v <= INT64_MAX:
            return v
        raise DecodeError(f"integer out of range (at most 64 bits), got {describe(v)}")
    raise DecodeError(f"expected an integer, got {describe(v)}")


def _float(v: Any) -> float:
    if isinstance(v, float):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:
            raise DecodeError(f"number out of range, got {describe(v)}") from None
    raise DecodeError(f"expected a number, got {describe(v)}")


def _finite_float(v: Any) -> float:
    out = _float(v)
    if not math.isfinite(out):
        raise DecodeError(f"expected a finite number, got {describe(v)}")
    return out


def _bounded_float(limit: float) -> Decoder:
    def decode_bounded(v: Any) -> float:
        out = _finite_float(v)
        if abs(out) > limit:
            raise DecodeError(f"expected a number between {-limit:g} and {limit:g}, got {describe(v)}")
        return out
    return decode_bounded


def _str(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise DecodeError(f"expected a string, got {describe(v)}")


def _none(v: Any) -> None:
    if v is None:
        return None
    raise DecodeError(f"expected null, got {describe(v)}")


def _enum(cls: type[enum.Enum]) -> Decoder:
    values = {m.value: m for m in cls}
    choices = ", ".join(describe(v) for v in values)

    def decode_enum(v: Any) -> enum.Enum:
        if isinstance(v, cls):
            return v
        if isinstance(v, (str, int)) and not isinstance(v, bool) and v in values:
            return values[v]
        raise DecodeError(f"expected one of {choices}, got {describe(v)}")
    return decode_enum


def _literal(args: tuple[Any, ...]) -> Decoder:
    choices = ", ".join(describe(a) for a in args)

    def decode_literal(v: Any) -> Any:
        if any(v == a and type(v) is type(a) for a in args):
            return v
        raise DecodeError(f"expected one of {choices}, got {describe(v)}")
    return decode_literal


_KIND = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}


def _union(members: tuple[Decoder, ...], args: tuple[Any, ...]) -> Decoder:
    # Exact JSON type first, so that 3 stays an int in ``float | int`` and true stays a bool.
    exact = {a: d for a, d in zip(args, members) if a in _KIND}
    rest = tuple(d for a, d in zip(args, members) if a not in _KIND)
    wanted = " or ".join(_KIND.get(a, _hint_name(a)) for a in args)

    def decode_union(v: Any) -> Any:
        direct = exact.get(type(v))
        if direct is None and type(v) is int and float in exact:
            direct = exact[float]
        if direct is not None:
            return direct(v)
        for d in exact.values():             # subclasses: numpy floats, str enums
            try:
                return d(v)
            except DecodeError:
                pass
        structured: DecodeError | None = None
        for d in rest:                        # nested records, lists, mappings, enums
            try:
                return d(v)
            except DecodeError as e:
                structured = structured if structured is not None else e
        if len(rest) == 1 and structured is not None and isinstance(v, (Mapping, list, tuple)):
            raise structured                  # the one structured member failed inside: say where
        raise DecodeError(f"expected {wanted}, got {describe(v)}")
    return decode_union


def _hint_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) or origin in (dict, typing.Mapping, _abc("Mapping")):
        return "an object"
    if origin in (tuple, list, typing.Sequence, _abc("Sequence")):
        return "a list"
    return getattr(tp, "__name__", str(tp))


def _sequence(item: Decoder, build: type) -> Decoder:
    def decode_sequence(v: Any) -> Any:
        if not isinstance(v, (list, tuple)):
            raise DecodeError(f"expected a list, got {describe(v)}")
        i = 0
        try:
            out = [item(x) for x in v]
        except DecodeError as e:
            for i, x in enumerate(v):          # the error path only: find which item failed
                try:
                    item(x)
                except DecodeError:
                    break
            raise e.at(f"[{i}]") from None
        return build(out)
    return decode_sequence


def _fixed_tuple(items: tuple[Decoder, ...]) -> Decoder:
    def decode_fixed(v: Any) -> tuple[Any, ...]:
        if not isinstance(v, (list, tuple)) or len(v) != len(items):
            raise DecodeError(f"expected a list of {len(items)} values, got {describe(v)}")
        out = []
        for i, (d, x) in enumerate(zip(items, v)):
            try:
                out.append(d(x))
            except DecodeError as e:
                raise e.at(f"[{i}]") from None
        return tuple(out)
    return decode_fixed


def _mapping(key: Decoder, value: Decoder) -> Decoder:
    def decode_mapping(v: Any) -> dict[Any, Any]:
        if not isinstance(v, Mapping):
            raise DecodeError(f"expected an object, got {describe(v)}")
        out = {}
        k: Any = None
        try:
            for k, x in v.items():
                out[key(k)] = value(x)
        except DecodeError as e:
            raise e.at(f".{k}") from None
        return out
    return decode_mapping


@functools.lru_cache(maxsize=None)
def field_decoders(cls: type, policy: FinitePolicy) -> dict[str, Decoder]:
    hints = typing.get_type_hints(cls)
    return {f.name: decoder(hints[f.name], policy(f.name), policy)
            for f in dataclasses.fields(cls) if f.init}


def _required(cls: type) -> frozenset[str]:
    missing = dataclasses.MISSING
    return frozenset(f.name for f in dataclasses.fields(cls)
                     if f.init and f.default is missing and f.default_factory is missing)


def unknown_field(key: Any, fields: Mapping[str, Any], noun: str = "field") -> str:
    import difflib
    close = difflib.get_close_matches(str(key), list(fields), n=1)
    hint = f"did you mean {describe(close[0])}?" if close else f"known: {', '.join(sorted(fields))}"
    return f"unknown {noun} {describe(key)} ({hint})"


def _dataclass(cls: type, policy: FinitePolicy) -> Decoder:
    fields = field_decoders(cls, policy)
    required = _required(cls)

    def decode_record(v: Any) -> Any:
        if isinstance(v, cls):
            return v
        if not isinstance(v, Mapping):
            raise DecodeError(f"expected an object, got {describe(v)}")
        kwargs: dict[str, Any] = {}
        key: Any = None
        try:                                   # one try for the whole record: valid files pay little
            for key, x in v.items():
                kwargs[key] = fields[key](x)
        except KeyError:
            raise DecodeError(unknown_field(key, fields)) from None
        except DecodeError as e:
            raise e.at(f".{key}") from None
        missing = () if required.issubset(kwargs) else sorted(required - kwargs.keys())
        if missing:
            raise DecodeError(f"missing field {describe(missing[0])}" + (f" (and {len(missing) - 1} more)"
                                                                  if len(missing) > 1 else ""))
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as e:
            raise DecodeError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    return decode_record
