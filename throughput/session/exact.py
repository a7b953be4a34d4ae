"""Exact sums of float64 values, kept in constant memory, so totals over a million steps equal
``math.fsum`` over all of them to the last bit however the values were batched.

Every finite double is an integer multiple of 2**-1074, so a sum of doubles is held exactly as a
Python int counting units of 2**-1126 (the extra 52 bits keep subnormal mantissas whole). Values are
added a numpy array at a time: ``frexp`` splits each into a 53-bit integer mantissa and an exponent,
mantissas are summed per exponent (split in 26-bit halves so that float64 ``bincount`` sums stay
exact), and each exponent's sum is shifted into the int: a few numpy calls per batch, not a Python
operation per value. Squares are added exactly as ``x*x`` plus its rounding error (Dekker's split),
so the variance of a million values is computed from exact sums and rounded once.

Stored in a session as *partials*: a few non-overlapping doubles, largest first, whose exact sum is the
total; the first is the correctly rounded total (what ``math.fsum`` of the values returns).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

_SCALE_BITS = 1126
_HALF = 26
_LOW_MASK = (1 << _HALF) - 1
_SPLIT = 134217729.0          # 2**27 + 1: Dekker's splitter for float64


def _exact_int(x: float) -> int:
    """``x`` (finite) in units of 2**-1126, exactly."""
    num, den = x.as_integer_ratio()       # den is a power of two, at most 2**1074
    return num * ((1 << _SCALE_BITS) // den)


class ExactSum:
    """An exact running sum of doubles (mutable). Non-finite values are not accepted."""

    __slots__ = ("_acc",)

    def __init__(self, acc: int = 0) -> None:
        self._acc = acc

    @classmethod
    def of_partials(cls, partials: Iterable[float]) -> "ExactSum":
        return cls(sum(_exact_int(float(p)) for p in partials))

    def add_array(self, values: np.ndarray) -> None:
        """Add every element of a float64 array (finite values only; raises ValueError otherwise)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if x.size == 0:
            return
        if not np.isfinite(x).all():
            raise ValueError("ExactSum adds finite values only")
        mantissa, exponent = np.frexp(x)                  # x = mantissa * 2**exponent, 0.5 <= |m| < 1
        ints = (mantissa * 9007199254740992.0).astype(np.int64)   # * 2**53: exact 53-bit integers
        lowest = int(exponent.min())
        slot = exponent - lowest                          # bins by exponent (a few thousand at most)
        high = np.bincount(slot, weights=(ints >> _HALF).astype(np.float64))  # < 2**27 each: exact sums
        low = np.bincount(slot, weights=(ints & _LOW_MASK).astype(np.float64))
        used = np.flatnonzero((high != 0.0) | (low != 0.0))
        acc = self._acc
        for i, h, lo in zip(used.tolist(), high[used].tolist(), low[used].tolist()):
            # value = int * 2**(e - 53) = int << (e - 53 + 1126); e >= -1073 for any double
            acc += ((int(h) << _HALF) + int(lo)) << (i + lowest + _SCALE_BITS - 53)
        self._acc = acc

    def add_squares(self, values: np.ndarray) -> None:
        """Add x*x for every element, exactly (the rounded square plus its rounding error)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        square = x * x
        c = _SPLIT * x
        high = c - (c - x)
        low = x - high
        error = ((high * high - square) + 2.0 * high * low) + low * low
        self.add_array(square)
        self.add_array(error)

    def add(self, other: "ExactSum") -> None:
        self._acc += other._acc

    def subtract(self, other: "ExactSum") -> None:
        self._acc -= other._acc

    @property
    def scaled(self) -> int:
        """The sum in units of 2**-1126 (for exact arithmetic on several sums)."""
        return self._acc

    def value(self) -> float:
        """The correctly rounded sum (equal to ``math.fsum`` of every value added)."""
        return self._acc / (1 << _SCALE_BITS)   # int / int is correctly rounded in Python

    def partials(self) -> tuple[float, ...]:
        """Non-overlapping doubles, largest first, whose exact sum is this sum (``()`` for zero)."""
        out: list[float] = []
        rest = self._acc
        while rest:
            part = rest / (1 << _SCALE_BITS)
            if part == 0.0:          # below the smallest subnormal: cannot happen for sums of doubles
                break
            out.append(part)
            rest -= _exact_int(part)
        return tuple(out)


def exact_total(values: Sequence[float]) -> ExactSum:
    acc = ExactSum()
    acc.add_array(np.asarray(values, dtype=np.float64))
    return acc


def exact_variance(count: int, total: ExactSum, squares: ExactSum) -> float:
    """Population variance from exact sums: (sum(x^2) - sum(x)^2 / n) / n, rounded once; 0 for n == 0."""
    if count <= 0:
        return 0.0
    scale = 1 << _SCALE_BITS
    numerator = count * squares.scaled * scale - total.scaled * total.scaled
    return max(0.0, numerator / (count * count * scale * scale))


def exact_std(values: Sequence[float]) -> float:
    """Population standard deviation of ``values`` computed from exact sums (0 for an empty sequence)."""
    arr = np.asarray(values, dtype=np.float64)
    total, squares = ExactSum(), ExactSum()
    total.add_array(arr)
    squares.add_squares(arr)
    return math.sqrt(exact_variance(len(arr), total, squares))
