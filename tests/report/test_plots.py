"""The step-breakdown plot stays readable with many phases: the top ones, and the rest as one band."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_steps
from throughput.analysis.series import step_series, top_phases
from throughput.report import plots
from throughput.session import RunInfo, Session

# Phase k takes (k + 1) / 1024 s a step, so phase 39 has the most time and phase 0 the least.
MANY = {f"phase{k:02d}": (k + 1) / 1024 for k in range(40)}


def _series(steps: int = 30, warmup: int = 0) -> Any:
    session = Session(info=RunInfo(run_id="many", warmup_steps=warmup),
                      steps=make_steps([MANY] * steps, other_s=1 / 1024))
    return step_series(session)


def test_top_phases_keeps_the_largest_and_adds_up_the_rest() -> None:
    series = _series()
    shown = top_phases(series, keep=3)
    # 40 phases and other (1/1024 s): the top 3 are phase39, phase38, phase37 (40, 39, 38 /1024 s);
    # the other 37 phases and "other" (the 38 smallest) fold into one band
    assert shown.phases == ("phase37", "phase38", "phase39", "38 more phases")
    rest_s = (sum(range(1, 38)) + 1) / 1024      # phases 0..36 take 1..37 /1024 s, other 1/1024 s
    assert shown.phase_s["38 more phases"] == tuple([rest_s] * 30)
    assert shown.phase_s["phase39"] == series.phase_s["phase39"]
    # per step, the bands still add up to the step's time
    assert sum(v[0] for v in shown.phase_s.values()) == pytest.approx(series.duration_s[0])


def test_top_phases_leaves_a_small_series_alone() -> None:
    series = step_series(Session(info=RunInfo(run_id="few"), steps=make_steps([{"a": 0.5, "b": 0.25}] * 3)))
    assert top_phases(series, keep=2) is series      # a, b and other: folding 1 into "1 more" says nothing
    with pytest.raises(ValueError):
        top_phases(series, keep=-1)


def test_the_breakdown_plot_draws_at_most_k_plus_one_bands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    drawn: list[Any] = []
    save = plots._save

    def keep_figure(fig: Any, plt: Any, path: Path) -> Path:
        bottom = fig.axes[1]
        drawn.append(([c for c in bottom.collections], [t.get_text() for t in bottom.get_legend().get_texts()]))
        return save(fig, plt, path)

    monkeypatch.setattr(plots, "_save", keep_figure)
    path = plots.plot_step_breakdown(_series(steps=60, warmup=2), tmp_path / "step_breakdown.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ((bands, legend),) = drawn
    k = plots.BREAKDOWN_PHASES
    assert len(bands) == len(legend) == k + 1
    # the k largest (phase30 .. phase39), then the other 30 phases and "other" as one band
    assert legend == [f"phase{i}" for i in range(40 - k, 40)] + [f"{40 - k + 1} more phases"]
