"""Steady-state page faults and the allocator finding, from hand-made telemetry samples."""

from __future__ import annotations

import dataclasses

import pytest

from throughput.analysis.faults import (FAULTS_PER_STEP_MIN, SYSTEM_SHARE_MIN, allocator_env,
                                        malloc_threshold_bytes, page_faults)
from throughput.analysis.summary import summarize
from throughput.analysis.telemetry import telemetry_summary
from throughput.report import RENDERERS
from throughput.session.records import TelemetrySample
from throughput.session.session import Session
from tests.helpers import make_session

MIB = 2**20


def _counters(time_s: float, faults: float, user_s: float, system_s: float) -> list[TelemetrySample]:
    return [TelemetrySample(time_s=time_s, source="main", metric=m, value=v)
            for m, v in (("minor_faults_total", faults), ("user_cpu_total_s", user_s),
                         ("system_cpu_total_s", system_s))]


def fault_session(faults_per_step: float, user_per_step_s: float, system_per_step_s: float,
             rss_bytes: float = 600 * MIB) -> Session:
    """4 steps of 0.5 s (step 0 is warm-up, so steps 1-3 from t=0.5 to t=2.0 are measured), one sample
    at every step boundary. The warm-up step faults 10,000 times: a figure over the whole run would
    include those."""
    base = make_session(n_steps=4, warmup_steps=1, forward=0.5)
    samples = _counters(0.0, 0.0, 0.0, 0.0)
    for i, t in enumerate((0.5, 1.0, 1.5, 2.0)):
        samples += _counters(t, 10_000 + i * faults_per_step, i * user_per_step_s, i * system_per_step_s)
    samples.append(TelemetrySample(time_s=1.0, source="main", metric="rss_bytes", value=rss_bytes))
    return dataclasses.replace(base, telemetry=tuple(samples))


def test_faults_per_step_and_kernel_share_over_the_steady_state() -> None:
    s = fault_session(faults_per_step=3000, user_per_step_s=0.3, system_per_step_s=0.1)
    p = page_faults(s.telemetry, s.steps[1:])
    assert p is not None
    assert p.window_s == 1.5                              # samples at t=0.5 .. t=2.0
    assert p.minor_faults == 9000                         # 3 steps x 3000; warm-up's 10,000 left out
    assert p.faults_per_s == 6000                         # 9000 / 1.5 s
    assert p.faults_per_step == 3000                      # 6000 /s x 0.5 s mean step
    assert p.system_share == pytest.approx(0.25)          # 0.3 s / (0.9 s + 0.3 s)
    assert p.peak_rss_bytes == 600 * MIB


def test_needs_two_samples_inside_the_measured_steps() -> None:
    s = fault_session(faults_per_step=3000, user_per_step_s=0.3, system_per_step_s=0.1)
    # measured steps 3 only (t=1.5..2.0): samples at 1.5 and 2.0, enough
    assert page_faults(s.telemetry, s.steps[3:]) is not None
    inside_one = tuple(t for t in s.telemetry if t.time_s != 2.0)
    assert page_faults(inside_one, s.steps[3:]) is None   # only t=1.5 left inside 1.5..2.0
    assert page_faults(s.telemetry, ()) is None
    assert page_faults((), s.steps) is None               # sampler off or no /proc


@pytest.mark.parametrize(("faults", "user_s", "system_s", "expected"), [
    (3000, 0.3, 0.1, True),        # 3000 >= 1000 a step and 25% >= 10% in the kernel
    (1000, 0.9, 0.1, True),        # exactly at both thresholds: 1000 a step, 0.3 / 3.0 = 10%
    (999, 0.3, 0.1, False),        # one fault a step short
    (3000, 0.9, 0.09, False),      # 0.27 / (2.7 + 0.27) = 9.1% < 10%
])
def test_finding_needs_both_thresholds(faults: float, user_s: float, system_s: float, expected: bool) -> None:
    assert (FAULTS_PER_STEP_MIN, SYSTEM_SHARE_MIN) == (1000.0, 0.10)
    kinds = [f.kind for f in summarize(fault_session(faults, user_s, system_s)).findings]
    assert kinds == (["page_faults_per_step"] if expected else [])


def test_finding_evidence_and_env_in_every_renderer() -> None:
    summary = summarize(fault_session(faults_per_step=3000, user_per_step_s=0.3, system_per_step_s=0.1))
    (f,) = summary.findings
    assert f.evidence[0].startswith("3,000 minor page faults a step")
    assert "kernel time 25%" in f.evidence[1] and "1.5 s of steady state" in f.evidence[1]
    # 600 MiB peak RSS < 1 GiB: the 1 GiB floor
    assert "MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824" in f.action
    assert "holds its memory at its peak" in f.action
    assert "python train.py (Linux" in f.action          # the session recorded no command line
    faulting = fault_session(faults_per_step=3000, user_per_step_s=0.3, system_per_step_s=0.1)
    run = summarize(dataclasses.replace(faulting, info=dataclasses.replace(faulting.info,
                                                                           argv=("my train.py", "--lr", "1e-3 x"))))
    assert "=1073741824 python 'my train.py' --lr '1e-3 x' (Linux" in run.findings[0].action   # the run's own
    for name, render in RENDERERS.items():
        assert "page_faults_per_step" in render(summary), name


def test_threshold_is_peak_rss_rounded_up_to_a_power_of_two() -> None:
    assert malloc_threshold_bytes(None) == 2**30
    assert malloc_threshold_bytes(600 * MIB) == 2**30       # below the 1 GiB floor
    assert malloc_threshold_bytes(3 * 2**30) == 4 * 2**30   # 3 GiB -> 4 GiB
    assert allocator_env(5 * 2**30) == {"MALLOC_MMAP_THRESHOLD_": str(8 * 2**30),
                                        "MALLOC_TRIM_THRESHOLD_": str(8 * 2**30)}


def test_counters_are_left_out_of_the_mean_max_table() -> None:
    s = fault_session(faults_per_step=3000, user_per_step_s=0.3, system_per_step_s=0.1)
    assert [h.metric for h in telemetry_summary(s).host] == ["rss_bytes"]
