"""Clocks. Only this package reads the time; everything else receives a ``Clock``."""

from __future__ import annotations

import time
from typing import Protocol


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
