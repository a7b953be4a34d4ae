"""throughput.validation: decoders built from type hints, one-line errors with the path in the data."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Literal, Mapping

import pytest

from throughput.validation import DecodeError, decode, decode_fields, none_finite, parse_text


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True, kw_only=True)
class Inner:
    name: str
    times_s: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outer:
    count: int
    inners: tuple[Inner, ...] = ()
    color: Color = Color.RED
    ratio: float | None = None
    mode: Literal["a", "b"] = "a"
    detail: Mapping[str, float | int | str | bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")


def _error(tp: object, raw: object, **kw: object) -> str:
    with pytest.raises(DecodeError) as info:
        decode(tp, raw, **kw)  # type: ignore[arg-type]
    return str(info.value)


def test_a_valid_document_builds_the_records() -> None:
    raw = {"count": 2, "inners": [{"name": "x", "times_s": {"a": 1}}], "color": "blue", "ratio": 0.5,
           "detail": {"n": 3, "ok": True, "f": 1.5}}
    out = decode(Outer, raw)
    assert out == Outer(count=2, inners=(Inner(name="x", times_s={"a": 1.0}),), color=Color.BLUE, ratio=0.5,
                        detail={"n": 3, "ok": True, "f": 1.5})
    assert type(out.inners[0].times_s["a"]) is float and type(out.detail["n"]) is int   # 1 -> 1.0; 3 stays 3


@pytest.mark.parametrize("raw, message", [
    ({"count": "2"}, 'count: expected an integer, got "2"'),
    ({"count": True}, "count: expected an integer, got true"),                    # a bool is not a number
    ({"count": 2.0}, "count: expected an integer, got 2.0"),
    ({"count": 2**63}, "count: integer out of range (at most 64 bits), got 9223372036854775808"),
    ({"count": 1, "inners": [{"name": "x"}, {"name": "y", "times_s": {"b": "fast"}}]},
     'inners[1].times_s.b: expected a number, got "fast"'),
    ({"count": 1, "inners": {"name": "x"}}, "inners: expected a list, got an object"),
    ({"count": 1, "color": "green"}, 'color: expected one of "red", "blue", got "green"'),
    ({"count": 1, "ratio": "x"}, 'ratio: expected a number or null, got "x"'),
    ({"count": 1, "mode": "c"}, 'mode: expected one of "a", "b", got "c"'),
    ({"count": 1, "detail": {"k": [1]}}, "detail.k: expected a number or an integer or a string or true or false, "
                                         "got a list"),
    ({"count": 1, "cuont": 2}, 'unknown field "cuont" (did you mean "count"?)'),
    ({}, 'missing field "count"'),
    ({"count": -1}, "count must be >= 0, got -1"),                               # the record's own check
    ([], "expected an object, got a list"),
])
def test_wrong_documents_name_the_path(raw: object, message: str) -> None:
    assert _error(Outer, raw) == message


def test_finiteness_follows_the_policy() -> None:
    assert _error(Outer, {"count": 1, "ratio": math.inf}) == "ratio: expected a finite number, got inf"
    assert math.isnan(decode(Outer, {"count": 1, "ratio": math.nan}, finite=none_finite).ratio)
    limit = decode(Inner, {"name": "x", "times_s": {"a": 5.0}}, finite=lambda name: 10.0)
    assert limit.times_s == {"a": 5.0}
    assert _error(Inner, {"name": "x", "times_s": {"a": 11.0}}, finite=lambda name: 10.0) == \
        "times_s.a: expected a number between -10 and 10, got 11.0"


def test_a_path_prefix_and_partial_fields() -> None:
    assert _error(Outer, {"count": "x"}, path="plan") == 'plan.count: expected an integer, got "x"'
    assert decode_fields(Outer, {"ratio": 1}) == {"ratio": 1.0}
    with pytest.raises(DecodeError, match='unknown config key "rato" \\(did you mean "ratio"\\?\\)'):
        decode_fields(Outer, {"rato": 1}, noun="config key")


@pytest.mark.parametrize("tp, text, value", [
    (int, " 42 ", 42), (float, "3e-4", 3e-4), (bool, "yes", True), (bool, "off", False),
    (int | None, "none", None), (Color, "blue", Color.BLUE), (str, "x", "x"),
])
def test_parse_text(tp: object, text: str, value: object) -> None:
    assert parse_text(tp, text) == value


@pytest.mark.parametrize("tp, text, message", [
    (int, "1.5", 'expected an integer, got "1.5"'), (float, "inf", "expected a finite number, got inf"),
    (float, "fast", 'expected a number, got "fast"'), (bool, "maybe", 'expected true or false, got "maybe"'),
])
def test_parse_text_errors(tp: object, text: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse_text(tp, text)
    assert str(info.value) == message
