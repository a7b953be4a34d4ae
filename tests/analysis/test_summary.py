"""Analysis on hand-built sessions: the arithmetic is in each test."""

from __future__ import annotations

import pytest

from tests.helpers import make_session, make_steps
from throughput.analysis import breakdown, distribution, rates, summarize
from throughput.analysis.stats import quantile
from throughput.session import RunInfo, Session


def test_breakdown_shares_and_other() -> None:
    # each step: data 0.25 + forward 0.5 + backward 1.0 + optimizer 0.25 + other 0.5 = 2.5 s
    session = make_session(n_steps=4, data=0.25, forward=0.5, backward=1.0, optimizer=0.25, other_s=0.5)
    shares = {p.phase: p.share for p in breakdown(session.steps)}
    assert shares == pytest.approx({"data": 0.1, "forward": 0.2, "backward": 0.4, "optimizer": 0.1,
                                    "other": 0.2})
    assert [p.phase for p in breakdown(session.steps)] == ["data", "forward", "backward", "optimizer", "other"]


def test_user_phases_sort_after_standard_ones() -> None:
    steps = make_steps([{"zeta": 1.0, "forward": 1.0, "alpha": 1.0}])
    assert [p.phase for p in breakdown(steps)] == ["forward", "alpha", "zeta", "other"]


def test_phase_percentiles_count_missing_as_zero() -> None:
    # eval only on the last of 4 steps: per-step eval times [0, 0, 0, 2.0]
    steps = make_steps([{"forward": 1.0}] * 3 + [{"forward": 1.0, "eval": 2.0}])
    ev = next(p for p in breakdown(steps) if p.phase == "eval")
    assert ev.mean_s == pytest.approx(0.5)                   # 2.0 / 4
    assert ev.p50_s == 0.0
    assert ev.p95_s == pytest.approx(0.0 + 0.85 * 2.0)       # pos 0.95*3 = 2.85 between 0 and 2.0
    assert ev.share == pytest.approx(2.0 / 6.0)              # wall 1+1+1+3


def test_rates_over_measured_steps() -> None:
    # 4 steps of 0.5 s, 32 samples and 4096 tokens each
    session = make_session(n_steps=4, forward=0.5, samples=32, tokens=4096)
    r = rates(session.steps)
    assert r.samples_per_s == pytest.approx(32 * 4 / 2.0)
    assert r.tokens_per_s == pytest.approx(4096 * 4 / 2.0)
    assert r.device_busy_share is None


def test_tokens_per_second_counts_the_real_tokens() -> None:
    """Padding is compute, not throughput: 1024 tokens a step of which 256 padding, 4 steps of 0.5 s,
    read 768 x 4 / 2.0 tokens/s (QA: a 49%-padded run showed its pad positions as tokens/s, so packing it
    showed no gain in `compare`)."""
    from dataclasses import replace
    steps = [replace(s, padding_tokens=256) for s in make_session(n_steps=4, forward=0.5, tokens=1024).steps]
    r = rates(steps)
    assert r.tokens_per_s == pytest.approx(768 * 4 / 2.0) and r.padding_fraction == pytest.approx(0.25)


def test_warmup_is_excluded() -> None:
    steps = make_steps([{"forward": 5.0}, {"forward": 1.0}, {"forward": 1.0}, {"forward": 1.0}])
    summary = summarize(Session(info=RunInfo(run_id="w", warmup_steps=1), steps=steps))
    assert summary.steps_measured == 3 and summary.warmup_steps == 1
    assert summary.step_time is not None and summary.step_time.median_s == 1.0
    assert summary.warmup_step_time is not None and summary.warmup_step_time.mean_s == 5.0


def test_too_short_run_keeps_all_steps_and_says_so() -> None:
    steps = make_steps([{"forward": 1.0}, {"forward": 3.0}])
    summary = summarize(Session(info=RunInfo(run_id="s", warmup_steps=2), steps=steps))
    assert summary.steps_measured == 2
    assert any("warm-up (2) not excluded" in n for n in summary.notes)


def test_no_steps() -> None:
    summary = summarize(Session(info=RunInfo(run_id="none")))
    assert summary.step_time is None and summary.verdict.kind == "no_steps"
    assert "no training steps were seen" in summary.notes


@pytest.mark.parametrize("phases, kind", [
    ({"data": 0.3, "forward": 0.4, "backward": 0.3}, "input_bound"),          # data 30% >= 20%
    ({"data": 0.1, "forward": 0.3, "backward": 0.3, "optimizer": 0.3}, "optimizer_bound"),
    ({"forward": 0.3, "backward": 0.4, "eval": 0.3}, "eval_heavy"),
    ({"forward": 0.4, "backward": 0.4, "checkpoint": 0.2}, "checkpoint_heavy"),
    ({"forward": 0.5, "backward": 0.5}, "compute_bound"),
])
def test_verdict_kinds(phases: dict[str, float], kind: str) -> None:
    summary = summarize(make_session(n_steps=3, **phases))
    assert summary.verdict.kind == kind


def test_host_bound_on_cuda_when_gpu_idles() -> None:
    steps = tuple(s.__class__(**{**{f: getattr(s, f) for f in s.__slots__}, "device_phase_s": {"forward": 0.2},
                                 "device_busy_s": 0.2}) for s in make_steps([{"forward": 1.0}] * 3))
    summary = summarize(Session(info=RunInfo(run_id="c", device="cuda", warmup_steps=0), steps=steps))
    assert summary.rates.device_busy_share == pytest.approx(0.2)
    assert summary.verdict.kind == "host_bound" and summary.verdict.share == pytest.approx(0.8)


def test_distribution_and_quantile() -> None:
    d = distribution([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (d.mean_s, d.median_s, d.min_s, d.max_s) == (3.0, 3.0, 1.0, 5.0)
    assert d.p95_s == pytest.approx(4.8)       # pos 0.95*4 = 3.8 -> 4 + 0.8*(5-4)
    assert d.spread == pytest.approx((4.8 - 1.2) / 3.0)
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_the_optimizer_bound_action_follows_what_the_run_recorded() -> None:
    from throughput.analysis.breakdown import PhaseStats
    from throughput.analysis.verdict import verdict
    phases = [PhaseStats(phase=name, total_s=share, mean_s=share, p50_s=share, p95_s=share, share=share)
              for name, share in (("forward", 0.3), ("backward", 0.3), ("optimizer", 0.4))]
    plain = verdict(phases, context={"optimizer": "Adam"}).action
    assert "add foreach=True to torch.optim.Adam(...)" in plain and "gradient accumulation" in plain
    on = verdict(phases, context={"optimizer": "AdamW", "foreach": True}).action
    assert "foreach" not in on and "gradient accumulation" in on           # already on: not advised again
    gan = verdict(phases, context={"optimizer": "Adam", "objectives_alternate": True}).action
    assert "gradient accumulation" not in gan                               # a GAN's batch is the game's
