"""The overhead benchmark's verdict: the median over processes judged by its bootstrap interval."""

from benchmarks.overhead import row_result


def test_every_process_below_the_target_passes() -> None:
    result, (low, high) = row_result([0.010, 0.012, 0.011, 0.009, 0.013], 0.03)
    assert result == "pass"
    assert 0.009 <= low <= 0.011 <= high <= 0.013   # resampled medians lie among the values


def test_every_process_above_the_target_fails() -> None:
    assert row_result([0.040, 0.035, 0.050, 0.045, 0.038], 0.03)[0] == "FAIL"


def test_processes_on_both_sides_of_the_target_are_inconclusive() -> None:
    # the median (0.033) is above 3%, but resamples of processes this spread reach well below it
    assert row_result([0.083, 0.054, 0.083, 0.052, 0.011, -0.013, -0.042, 0.019, 0.033], 0.03)[0] == "inconclusive"


def test_identical_processes_decide_by_their_value() -> None:
    assert row_result([0.01] * 5, 0.01) == ("pass", (0.01, 0.01))
    assert row_result([0.0101] * 5, 0.01)[0] == "FAIL"
