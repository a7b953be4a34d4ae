"""Peak-memory fit: hand-derived least squares and the largest batch under a budget."""

from __future__ import annotations

import pytest

from throughput.advisor.memory import fit_memory, probe_sizes


def test_two_points_define_the_line() -> None:
    # peak = 1000 + 50 b: (2, 1100), (4, 1200)
    fit = fit_memory([(2, 1_100), (4, 1_200)])
    assert fit.fixed_bytes == pytest.approx(1_000) and fit.per_sample_bytes == pytest.approx(50)
    assert fit.predict_bytes(10) == pytest.approx(1_500)
    assert fit.max_residual_bytes == pytest.approx(0)


def test_three_points_least_squares_hand_derived() -> None:
    # x = 1, 2, 3; y = 10, 20, 33. mean x = 2, mean y = 21
    # Sxx = 1 + 0 + 1 = 2; Sxy = (-1)(-11) + 0*(-1) + (1)(12) = 23 -> slope 11.5, intercept 21 - 23 = -2
    # fitted: 9.5, 21, 32.5 -> residuals 0.5, -1, 0.5 -> max 1
    fit = fit_memory([(1, 10), (2, 20), (3, 33)])
    assert fit.per_sample_bytes == pytest.approx(11.5) and fit.fixed_bytes == pytest.approx(-2)
    assert fit.max_residual_bytes == pytest.approx(1.0)


def test_max_batch_keeps_the_safety_margin() -> None:
    fit = fit_memory([(2, 1_100), (4, 1_200)])
    # usable = 2000 * (1 - 0.1) = 1800; (1800 - 1000) / 50 = 16
    assert fit.max_batch(2_000) == 16
    # no margin: (2000 - 1000) / 50 = 20
    assert fit.max_batch(2_000, safety_margin=0.0) == 20
    # the fixed part alone exceeds the usable budget: nothing fits
    assert fit.max_batch(1_000) == 0


def test_memory_that_does_not_grow_gives_no_limit() -> None:
    fit = fit_memory([(1, 500), (8, 500)])
    assert fit.max_batch(1_000) is None
    assert fit.max_batch(400) == 0


@pytest.mark.parametrize("points,match", [([(4, 100)], ">= 2"), ([(4, 100), (4, 120)], "same batch size"),
                                          ([(0, 1), (2, 3)], "> 0")])
def test_fit_rejects_points_that_define_no_line(points: list[tuple[int, int]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_memory(points)


def test_probe_sizes_are_small_and_capped() -> None:
    assert probe_sizes(64) == (1, 2, 4)
    assert probe_sizes(3) == (1, 2, 3)
    assert probe_sizes(64, smallest=8) == (8, 16, 32)
    assert probe_sizes(2, smallest=2) == (2,)
