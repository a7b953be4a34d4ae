"""The within-process ratio math of benchmarks/within_process.py and the step layout of
benchmarks/ops_window.py, on numbers derived by hand."""

from __future__ import annotations

import pytest

from benchmarks.ops_window import Layout
from benchmarks.within_process import (Spread, after_over_before, block, bootstrap_ci, bootstrap_median_ci,
                                       ratio_of_medians, spread, verdict)


def test_spread_odd_and_even() -> None:
    assert spread([5.0, 1.0, 3.0, 2.0, 4.0]) == Spread(median=3.0, q1=2.0, q3=4.0, low=1.0, high=5.0)
    # inclusive quartiles of 1..4: positions 0.75 and 2.25 -> 1.75 and 3.25
    assert spread([1.0, 2.0, 3.0, 4.0]) == Spread(median=2.5, q1=1.75, q3=3.25, low=1.0, high=4.0)
    assert spread([7.0]) == Spread(median=7.0, q1=7.0, q3=7.0, low=7.0, high=7.0)
    with pytest.raises(ValueError):
        spread([])


def test_after_over_before_is_a_ratio_of_medians() -> None:
    assert after_over_before([10.0, 20.0, 30.0], [11.0, 22.0, 33.0, 44.0]) == pytest.approx(27.5 / 20.0)
    assert after_over_before([0.05, 0.5, 0.05], [0.05]) == 1.0     # one slow step does not move a median
    with pytest.raises(ValueError):
        after_over_before([], [1.0])


def test_block_takes_the_steps_in_order_and_refuses_gaps() -> None:
    by_index = {3: 0.3, 4: 0.4, 5: 0.5, 7: 0.7}
    assert block(by_index, range(3, 6)) == [0.3, 0.4, 0.5]
    with pytest.raises(ValueError, match="steps 6..6 are missing"):
        block(by_index, range(5, 8))


def test_ratio_of_medians() -> None:
    assert ratio_of_medians([1.02, 1.0, 1.1], [1.0, 0.98, 1.0]) == pytest.approx(1.02)


def test_bootstrap_of_identical_processes_is_a_point() -> None:
    assert bootstrap_ci([1.01] * 4, [1.0] * 3) == pytest.approx((1.01, 1.01))


def test_bootstrap_interval_spans_what_resampling_can_give() -> None:
    # treated resamples of [0.9, 1.1] have median 0.9, 1.0 or 1.1 (1/4, 1/2, 1/4 of draws); the control
    # is always 1.0, so the 2.5% and 97.5% points are 0.9 and 1.1
    assert bootstrap_ci([0.9, 1.1], [1.0]) == pytest.approx((0.9, 1.1))


def test_verdict() -> None:
    assert verdict((0.99, 1.015), 0.02) == "pass"
    assert verdict((0.98, 1.02), 0.02) == "pass"
    assert verdict((1.03, 1.1), 0.02) == "fail"
    assert verdict((0.9, 0.97), 0.02) == "fail"
    assert verdict((0.97, 1.01), 0.02) == "inconclusive"
    assert verdict((0.9, 1.1), 0.02) == "inconclusive"


def test_layout_matches_the_window_schedule_of_docs_profile() -> None:
    # --warmup-steps W: the profiler's warm-up step W, recorded W+1..W+5, stopped in W+6
    lay = Layout(side=15)
    assert lay.warmup == 20
    assert (lay.before, lay.window, lay.stop_step, lay.after) == (range(5, 20), range(21, 26), 26, range(27, 42))
    assert lay.steps == 42


def test_bootstrap_median_ci_holds_the_median_and_is_a_point_for_equal_values() -> None:
    assert bootstrap_median_ci([1.01] * 7, level=0.9) == (1.01, 1.01)
    low, high = bootstrap_median_ci([0.9, 1.0, 1.1, 1.2, 1.3], level=0.9)
    assert 0.9 <= low <= 1.1 <= high <= 1.3   # resampled medians lie among the values, around the median 1.1
