"""The quantile sketch keeps its stated bound, and exact sums equal math.fsum."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from throughput.session.exact import ExactSum, exact_std
from throughput.session.sketch import RELATIVE_ACCURACY, SketchBuilder, sketch_of, sketch_quantile

_durations = st.lists(st.one_of(st.just(0.0), st.floats(1e-7, 1e3)), min_size=1, max_size=400)


@settings(max_examples=200, deadline=None)
@given(values=_durations, q=st.floats(0.0, 1.0), zeros=st.integers(0, 5))
def test_quantile_within_the_bound(values: list[float], q: float, zeros: int) -> None:
    # rank r = q (n - 1) over the values plus `zeros` zeros; the sketch's answer lies between
    # (1 - a) x_floor(r) and (1 + a) x_ceil(r) (to float rounding), where the exact one lies too.
    got = sketch_quantile(sketch_of(np.array(values)), q, implicit_zeros=zeros)
    ordered = sorted(values + [0.0] * zeros)
    rank = q * (len(ordered) - 1)
    lo, hi = ordered[math.floor(rank)], ordered[math.ceil(rank)]
    assert (1 - RELATIVE_ACCURACY) * lo * (1 - 1e-12) <= got <= (1 + RELATIVE_ACCURACY) * hi * (1 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(a=_durations, b=_durations)
def test_sketches_merge_and_subtract_exactly(a: list[float], b: list[float]) -> None:
    both = SketchBuilder(sketch_of(np.array(a)))
    both.merge(sketch_of(np.array(b)))
    assert both.freeze() == sketch_of(np.array(a + b))
    both.merge(sketch_of(np.array(b)), sign=-1)
    assert both.freeze() == sketch_of(np.array(a))


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(-1e12, 1e12), max_size=300), cut=st.integers(0, 300))
def test_exact_sums_equal_fsum_however_batched(values: list[float], cut: int) -> None:
    total = ExactSum()
    total.add_array(np.array(values[:cut]))
    total.add_array(np.array(values[cut:]))
    assert total.value() == math.fsum(values)
    assert math.fsum(total.partials()) == math.fsum(values)
    assert ExactSum.of_partials(total.partials()).scaled == total.scaled


def test_std_from_exact_sums_hand_derived() -> None:
    # values 1, 2, 3, 4: mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, / 4 = 1.25
    assert exact_std([1.0, 2.0, 3.0, 4.0]) == math.sqrt(1.25)
