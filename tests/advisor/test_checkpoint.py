"""Young/Daly checkpoint cadence, checked against cases worked by hand from the published formulas.

Daly (2006), "A higher order estimate of the optimum checkpoint interval for restart dumps":
    tau = sqrt(2 delta M) * [1 + 1/3 sqrt(delta / 2M) + 1/9 (delta / 2M)] - delta   (delta < 2M), else M.
The cases pick delta and M so that 2*delta*M and delta/(2M) are perfect squares, which keeps the
arithmetic exact on paper.
"""

from __future__ import annotations

import math

import pytest

from throughput.advisor.checkpoint import (
    FAILURES_PER_GPU_HOUR, daly_interval, expected_wall_time, mtbf_from_gpus, plan_checkpoints, young_interval,
)


def test_daly_five_minute_dump_daily_failures() -> None:
    # delta = 5 min = 300 s, M = 24 h = 86,400 s
    # 2*delta*M = 51,840,000 -> sqrt = 7,200 s (Young's interval)
    # delta/(2M) = 300 / 172,800 = 1/576 -> sqrt = 1/24
    # tau = 7200 * (1 + (1/3)(1/24) + (1/9)(1/576)) - 300 = 7200 + 100 + 7200/5184 - 300 = 7001.3889 s
    assert young_interval(300, 86_400) == pytest.approx(7_200.0)
    assert daly_interval(300, 86_400) == pytest.approx(7_200 + 100 + 7_200 / 5_184 - 300)
    assert daly_interval(300, 86_400) == pytest.approx(7_001.388_9, abs=1e-3)


def test_daly_eighteen_second_dump_hourly_failures() -> None:
    # delta = 18 s, M = 3,600 s: 2*delta*M = 129,600 -> sqrt = 360; delta/(2M) = 18/7,200 = 1/400 -> sqrt = 1/20
    # tau = 360 * (1 + 1/60 + 1/3600) - 18 = 360 + 6 + 0.1 - 18 = 348.1 s
    assert daly_interval(18, 3_600) == pytest.approx(348.1)
    assert young_interval(18, 3_600) == pytest.approx(360.0)


def test_daly_dump_longer_than_twice_mtbf_is_mtbf() -> None:
    # delta >= 2M: Daly's estimate is tau = M
    assert daly_interval(10.0, 4.0) == 4.0
    assert daly_interval(8.0, 4.0) == 4.0


def test_daly_interval_minimises_daly_expected_wall_time() -> None:
    delta, m = 300.0, 86_400.0
    best = daly_interval(delta, m)
    at_best = expected_wall_time(1.0, best, delta, m)
    for factor in (0.8, 0.9, 1.1, 1.25):
        assert expected_wall_time(1.0, best * factor, delta, m) > at_best


def test_expected_wall_time_hand_derived() -> None:
    # T_w = M e^{R/M} (e^{(tau+delta)/M} - 1) T_s / tau with M=100, R=0, tau=10, delta=10, T_s=50:
    # = 100 * (e^{0.2} - 1) * 50 / 10 = 500 * (e^0.2 - 1) = 500 * 0.221402758 = 110.701379
    assert expected_wall_time(50.0, 10.0, 10.0, 100.0) == pytest.approx(500 * (math.exp(0.2) - 1))
    assert expected_wall_time(50.0, 10.0, 10.0, 100.0) == pytest.approx(110.701379, rel=1e-8)
    # a restart of R = 100 s multiplies it by e^{100/100} = e
    assert expected_wall_time(50.0, 10.0, 10.0, 100.0, restart_s=100.0) == pytest.approx(
        math.e * 500 * (math.exp(0.2) - 1))


def test_failure_rate_defaults_from_llama3() -> None:
    # 419 unexpected interruptions / (54 days * 24 h * 16,384 GPUs) = 419 / 21,233,664 per GPU-hour
    assert FAILURES_PER_GPU_HOUR == pytest.approx(419 / 21_233_664)
    # on the full 16,384 GPUs: one interruption every 54 * 24 / 419 = 3.0931 h
    assert mtbf_from_gpus(16_384) / 3600 == pytest.approx(54 * 24 / 419)
    # on 8 GPUs it is 2,048x longer
    assert mtbf_from_gpus(8) == pytest.approx(2_048 * mtbf_from_gpus(16_384))


def test_plan_rounds_to_whole_steps_and_caps_lost_work() -> None:
    # Daly interval 7001.39 s at 100 s per step -> 70 steps (7,000 s of compute between checkpoints)
    plan = plan_checkpoints(delta_s=300, step_time_s=100, mtbf_s=86_400)
    assert plan.every_steps == 70 and plan.interval_s == pytest.approx(7_000.0) and not plan.capped
    # Lost fraction = 1 - 1 / (M (e^{(tau+delta)/M} - 1) / tau) at tau=7000, delta=300, M=86400
    wall = 86_400 * (math.exp(7_300 / 86_400) - 1) / 7_000
    assert plan.lost_fraction == pytest.approx(1 - 1 / wall)
    assert plan.lost_s_per_day == pytest.approx((1 - 1 / wall) * 86_400)
    # at most one hour of compute lost per failure: 3,600 s / 100 s = 36 steps
    capped = plan_checkpoints(delta_s=300, step_time_s=100, mtbf_s=86_400, max_lost_work_s=3_600)
    assert capped.every_steps == 36 and capped.capped
    assert capped.lost_fraction > plan.lost_fraction      # capping below the optimum costs time


def test_plan_default_mtbf_comes_from_gpu_count() -> None:
    plan = plan_checkpoints(delta_s=30, num_gpus=16_384)
    assert plan.mtbf_s == pytest.approx(3_600 * 54 * 24 / 419)
    assert "Llama 3" in plan.mtbf_source and plan.every_steps is None


@pytest.mark.parametrize("kwargs", [dict(delta_s=0), dict(delta_s=-1), dict(delta_s=1, mtbf_s=0),
                                    dict(delta_s=1, num_gpus=0), dict(delta_s=1, max_lost_work_s=0),
                                    dict(delta_s=1, step_time_s=0)])
def test_bad_inputs_raise_actionable_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        plan_checkpoints(**kwargs)  # type: ignore[arg-type]
