"""benchmarks/zerocode_overhead.py: the verdict rule on rows built by hand, the workload's marked region,
and the instruction count between marks under valgrind."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from torch.optim.optimizer import register_optimizer_step_post_hook

from benchmarks import _zerocode_workload as workload
from benchmarks.zerocode_overhead import implied_ratio, meets_target, region_instructions


def _row(whole_low: float, in_process_low: float, counted: float | None, target: float = 1.01,
         pairs: int = 9) -> dict[str, Any]:
    """A row's views: the lower ends of the two timing intervals and the count; its plain step in one
    process is 10 ms, so a hook cost of 100 us a step implies 1.01."""
    instructions = {"skipped": "no valgrind"} if counted is None else {"ratio": counted}
    return {"target": target, "ratio": 1.02, "ratio_interval_90": (whole_low, 1.03), "pairs": pairs,
            "instructions": instructions,
            "in_process": {"ratio": 1.0, "ratio_interval_90": (in_process_low, 1.05), "plain_step_s": 0.010}}


def test_the_count_decides_when_no_timing_resolves_the_row() -> None:
    # whole processes read 1.02 (interval from 0.987): they cannot tell; nor can one process
    assert meets_target(_row(0.987, in_process_low=0.99, counted=1.002), hook_added_s=300e-6)
    assert not meets_target(_row(0.987, in_process_low=0.95, counted=1.011), hook_added_s=10e-6)


def test_without_a_count_the_hook_cost_over_the_plain_step_decides() -> None:
    row = _row(0.987, in_process_low=0.98, counted=None)
    assert implied_ratio(row, 50e-6) == pytest.approx(1.005)
    assert meets_target(row, hook_added_s=50e-6)
    assert meets_target(row, hook_added_s=100e-6)          # 1.01: within means at most
    assert not meets_target(row, hook_added_s=110e-6)      # 1.011


def test_an_excess_a_timing_resolves_fails_whatever_the_estimate() -> None:
    assert not meets_target(_row(1.012, in_process_low=0.98, counted=1.002), hook_added_s=10e-6)  # whole processes
    assert not meets_target(_row(0.98, in_process_low=1.011, counted=1.002), hook_added_s=10e-6)  # one process


def test_two_whole_processes_a_mode_resolve_nothing() -> None:
    # a quick run's bootstrap over 2 + 2 processes is far narrower than their spread
    assert meets_target(_row(1.012, in_process_low=0.98, counted=1.002, pairs=2), hook_added_s=10e-6)
    assert not meets_target(_row(1.012, in_process_low=0.98, counted=1.002, pairs=5), hook_added_s=10e-6)


def test_the_workload_marks_the_counted_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    updates: list[int] = []
    marks: list[int] = []
    handle = register_optimizer_step_post_hook(lambda *a: updates.append(1))

    def ctermid() -> str:
        marks.append(len(updates))
        return "/dev/tty"
    monkeypatch.setattr(workload.os, "ctermid", ctermid)
    try:
        workload.train_marked(0, warm=2, steps=9)   # 8 batches an epoch: the region crosses an epoch
    finally:
        handle.remove()
    assert marks == [2, 11]
    assert len(updates) == 11


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_region_instructions_count_only_between_the_marks(tmp_path: Path) -> None:
    def count(loops: int) -> int:
        code = (f"import os, itertools\nos.ctermid()\nfor _ in itertools.repeat(None, {loops}): pass\n"
                "os.ctermid()\nfor _ in itertools.repeat(None, 300000): pass")
        return region_instructions([sys.executable, "-S", "-c", code], tmp_path / str(loops),
                                   env=dict(os.environ))
    small, large = count(10_000), count(110_000)
    per_iteration = (large - small) / 100_000   # the 100,000 more iterations are all that differs
    assert 5 < per_iteration < 5_000
    # the region holds its 10,000 iterations, not the start-up nor the 300,000 after the second mark
    assert 10_000 * per_iteration < small < 20_000 * per_iteration
