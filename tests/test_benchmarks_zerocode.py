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
from benchmarks.zerocode_overhead import meets_target, region_instructions


def _row(ratio: float, interval: tuple[float, float], counted: float | None, target: float = 1.01) -> dict[str, Any]:
    instructions = {"skipped": "no valgrind"} if counted is None else {"ratio": counted}
    return {"target": target, "ratio": ratio, "ratio_interval_90": interval, "instructions": instructions}


def test_a_count_within_target_passes_when_the_timings_cannot_tell() -> None:
    # whole-process 1.02, but its interval reaches below 1.01: the count (1.002) decides
    assert meets_target(_row(1.02, (0.987, 1.028), counted=1.002), in_process_ratio=1.006)


def test_an_excess_any_view_resolves_fails() -> None:
    assert not meets_target(_row(1.02, (1.012, 1.03), counted=1.002))          # the timings resolve it
    assert not meets_target(_row(1.0, (0.98, 1.02), counted=1.011))            # the count shows it
    assert not meets_target(_row(1.0, (0.98, 1.02), counted=1.002), in_process_ratio=1.012)


def test_without_a_count_the_point_ratio_decides() -> None:
    assert meets_target(_row(1.019, (0.97, 1.05), counted=None, target=1.02))
    assert not meets_target(_row(1.021, (0.97, 1.05), counted=None, target=1.02))


def test_the_workload_marks_the_counted_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    updates: list[int] = []
    marks: list[int] = []
    handle = register_optimizer_step_post_hook(lambda *a: updates.append(1))
    monkeypatch.setattr(workload.os, "ctermid", lambda: marks.append(len(updates)) or "/dev/tty")
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
