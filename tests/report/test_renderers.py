"""Renderers: a contract every renderer meets, and goldens for the fixed session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import make_session
from throughput.analysis import summarize
from throughput.report import RENDERERS, summary_to_dict

GOLDEN = Path(__file__).parent.parent / "golden"


def _summary():  # type: ignore[no-untyped-def]
    # 5 steps, 1 warm-up: data 0.1 + forward 0.2 + backward 0.4 + optimizer 0.1 + other 0.2 = 1.0 s
    return summarize(make_session(n_steps=5, warmup_steps=1, data=0.1, forward=0.2, backward=0.4,
                                  optimizer=0.1, other_s=0.2, samples=16, tokens=2048))


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_every_renderer_shows_phases_rates_and_verdict(fmt: str) -> None:
    text = RENDERERS[fmt](_summary())
    for needle in ("forward", "backward", "compute_bound" if fmt == "json" else "compute-bound"):
        assert needle in text
    assert "16.0" in text or "16" in text       # 16 samples / 1.0 s


@pytest.mark.parametrize("fmt, name", [("table", "summary.txt"), ("md", "summary.md")])
def test_golden(fmt: str, name: str) -> None:
    text = RENDERERS[fmt](_summary())
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_json_format_fields() -> None:
    d = summary_to_dict(_summary())
    assert d["steps"] == {"total": 5, "warmup": 1, "measured": 4}
    assert d["step_time"]["median_s"] == pytest.approx(1.0)
    shares = {p["phase"]: p["share"] for p in d["phases"]}
    assert shares["backward"] == pytest.approx(0.4) and sum(shares.values()) == pytest.approx(1.0)
    assert d["throughput"]["samples_per_s"] == pytest.approx(16.0)
    assert d["throughput"]["tokens_per_s"] == pytest.approx(2048.0)
    assert d["verdict"]["kind"] == "compute_bound"
    json.dumps(d, allow_nan=False)   # strict JSON: no NaN/Infinity
