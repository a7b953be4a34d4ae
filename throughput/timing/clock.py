"""Clocks. Only this package reads the time; everything else receives a ``Clock``."""

from __future__ import annotations

import time
from typing import Callable, Protocol


class Clock(Protocol):
    """A monotonic clock in seconds."""

    def now_s(self) -> float: ...


class PerfCounterClock:
    """``time.perf_counter``: monotonic, sub-microsecond resolution, ~50 ns per call."""

    __slots__ = ()

    def now_s(self) -> float:
        return time.perf_counter()


class FakeClock:
    """A clock tests advance by hand, so every expected time can be derived from the test."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._t = start_s

    def now_s(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back; advance({seconds})")
        self._t += seconds


def time_reader(clock: Clock) -> Callable[[], float]:
    """The cheapest callable reading ``clock``: ``time.perf_counter`` itself for the default clock (a
    C function, no Python frame: it is called twice per phase inside the user's training loop)."""
    return time.perf_counter if type(clock) is PerfCounterClock else clock.now_s
