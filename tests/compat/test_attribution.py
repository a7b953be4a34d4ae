"""compat/attribution.py: where an interval of a framework's own work landed among the profile's spans."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from compat.attribution import attribute, attribute_all, describe, shares


@dataclass(frozen=True)
class S:
    phase: str
    start_s: float
    end_s: float
    depth: int = 0


# optimizer 10..20 with a forward 12..15 and a backward 15..18 nested in it (a closure);
# a checkpoint 30..34 after it; nothing between 20 and 30.
SPANS = [S("optimizer", 10, 20), S("forward", 12, 15, 1), S("backward", 15, 18, 1), S("checkpoint", 30, 34)]


def test_innermost_span_wins_and_uncovered_time_is_other() -> None:
    got = attribute(SPANS, 11, 32)
    # optimizer 11..12 and 18..20 = 3, forward 3, backward 3, other 20..30 = 10, checkpoint 30..32 = 2
    assert got == pytest.approx({"optimizer": 3, "forward": 3, "backward": 3, "other": 10, "checkpoint": 2})
    assert sum(got.values()) == pytest.approx(32 - 11)


def test_interval_inside_one_span_and_outside_all() -> None:
    assert attribute(SPANS, 31, 33) == pytest.approx({"checkpoint": 2})
    assert attribute(SPANS, 40, 41) == pytest.approx({"other": 1})
    assert attribute(SPANS, 5, 5) == {}


def test_sum_over_intervals_shares_and_description() -> None:
    total = attribute_all(SPANS, [(29, 34), (40, 44)])     # checkpoint 4, other 1 + 4
    assert total == pytest.approx({"checkpoint": 4, "other": 5})
    assert shares(total) == pytest.approx({"other": 5 / 9, "checkpoint": 4 / 9})
    assert list(shares(total)) == ["other", "checkpoint"]   # largest first
    assert describe(shares(total)) == "other 56%, checkpoint 44%"
    assert shares({}) == {} and describe({}) == "none"


def test_reversed_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        attribute(SPANS, 3, 2)
