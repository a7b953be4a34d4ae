"""Run comparison with hand-derived numbers, and the `throughput compare` CLI as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from throughput.analysis.compare import compare
from throughput.report.compare import COMPARE_RENDERERS
from throughput.session.io import save_session
from throughput.session.records import RunInfo, StepRecord
from throughput.session.session import Session


def run(run_id: str, data: list[float], forward_s: float, backward_s: float = 0.3) -> Session:
    steps, t = [], 0.0
    for i, d in enumerate(data):
        dur = d + forward_s + backward_s
        steps.append(StepRecord(index=i, start_s=t, end_s=t + dur, samples=8,
                                phase_s={"data": d, "forward": forward_s, "backward": backward_s}))
        t += dur
    return Session(info=RunInfo(run_id=run_id, warmup_steps=0), steps=tuple(steps))


# A: data alternates 0.05/0.15 s (mean 0.10), forward 0.2 s, backward 0.3 s -> mean step 0.60 s
A = run("A", [0.05, 0.15] * 5, forward_s=0.2)
# B: data alternates 0.07/0.17 s (mean 0.12), forward 0.1 s, backward 0.3 s -> mean step 0.52 s
B = run("B", [0.07, 0.17] * 5, forward_s=0.1)


def test_compare_hand_derived() -> None:
    c = compare(A, B)
    assert c.a_step_mean_s == pytest.approx(0.6) and c.b_step_mean_s == pytest.approx(0.52)
    assert c.speedup == pytest.approx(0.6 / 0.52)
    assert c.a_samples_per_s == pytest.approx(8 / 0.6) and c.b_samples_per_s == pytest.approx(8 / 0.52)
    by = {p.phase: p for p in c.phases}
    assert [p.phase for p in c.phases] == ["data", "forward", "backward", "other"]
    fwd = by["forward"]
    assert (fwd.a_mean_s, fwd.b_mean_s, fwd.ratio) == (pytest.approx(0.2), pytest.approx(0.1), pytest.approx(0.5))
    assert fwd.a_share == pytest.approx(0.2 / 0.6) and fwd.b_share == pytest.approx(0.1 / 0.52)
    # constant phases have no band, so the floor applies: 1% of A's 0.6 s step = 6 ms < 100 ms change
    assert fwd.noise_s == pytest.approx(0.006) and fwd.moved
    # data: p5..p95 of five 0.05s and five 0.15s is 0.05..0.15 (band 0.1, noise 0.05); the 20 ms
    # change in the mean stays inside it
    assert by["data"].noise_s == pytest.approx(0.05) and by["data"].delta_s == pytest.approx(0.02)
    assert not by["data"].moved
    assert not by["backward"].moved
    assert [p.phase for p in c.moved] == ["forward"]


def test_compare_renderers_name_the_moved_phase() -> None:
    c = compare(A, B)
    for name, render in COMPARE_RENDERERS.items():
        text = render(c)
        assert "1.15x" in text or name == "json"              # 0.6 / 0.52 = 1.1538
        assert "forward" in text
    data = json.loads(COMPARE_RENDERERS["json"](c))
    assert data["moved"] == ["forward"] and data["speedup"] == pytest.approx(0.6 / 0.52)


def test_compare_without_steps_raises() -> None:
    with pytest.raises(ValueError, match="run B has no measured steps"):
        compare(A, Session(info=RunInfo(run_id="empty")))


def test_compare_cli(tmp_path: Path) -> None:
    a, b = save_session(A, tmp_path / "a.json"), save_session(B, tmp_path / "b.json")
    out = subprocess.run([sys.executable, "-m", "throughput", "compare", str(a), str(b), "--format", "md"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "speedup 1.15x (B is faster)" in out.stdout and "forward 200.00 ms -> 100.00 ms" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "throughput", "compare", str(a), str(tmp_path / "nope.json")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("throughput: error:") and "no such file" in bad.stderr


def test_a_run_compared_with_itself_is_the_same_speed() -> None:
    assert "speedup 1.00x (B is the same speed)" in COMPARE_RENDERERS["table"](compare(A, A))
