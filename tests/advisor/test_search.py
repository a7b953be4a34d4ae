"""The measured search, on a target whose measurements follow a stated formula (the ProbeTarget seam),
so every decision can be derived by hand; real workloads are probed in test_workload.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import pytest

from throughput.advisor.search import AdvisorError, loss_disagreement, search
from throughput.advisor.space import SearchSettings, SearchSpace, micro_batch_candidates
from throughput.advisor.trials import ProbeResult


@dataclass
class FormulaTarget:
    """seconds per sample = compute + data, where
    compute = 0.001 * (1 + overhead / m) * (0.5 if bf16) * (4/3 if checkpointing)
    data    = data_s / (1 + workers), overlapped with compute when workers > 0 (time = max of the two)
    peak    = 1000 + per_sample * m * (1/4 if checkpointing) bytes; a hard limit raises OOM."""

    overhead: float = 8.0
    data_s: float = 0.0
    per_sample: float = 100.0
    hard_limit: float = 1e12
    bf16_loss_factor: float = 1.001
    bf16_time: float = 0.5          # compute time at bf16 over fp32's (3.5: emulated, an AVX2-only CPU)
    compile_factor: float = 1.0
    supported: frozenset[str] = frozenset({"micro_batch_size"})
    calls: list[Mapping[str, object]] = field(default_factory=list)

    def run(self, config: Mapping[str, object], steps: int) -> ProbeResult:
        self.calls.append(dict(config))
        m, w = int(config["micro_batch_size"]), int(config.get("num_workers", 0))  # type: ignore[call-overload]
        bf16, ac = config.get("amp") == "bf16", bool(config.get("activation_checkpointing"))
        peak = 1000 + self.per_sample * m * (0.25 if ac else 1.0)
        if peak > self.hard_limit:
            return ProbeResult(oom=True, error="RuntimeError: CUDA out of memory", peak_memory_bytes=None)
        compute = 0.001 * (1 + self.overhead / m) * (self.bf16_time if bf16 else 1.0) * (4 / 3 if ac else 1.0)
        compute *= self.compile_factor if config.get("compile") else 1.0
        data = self.data_s / (1 + w)
        per_sample = max(compute, data) if w else compute + data
        wait = (data if w == 0 else max(0.0, data - compute)) / per_sample
        losses = tuple(x * (self.bf16_loss_factor if bf16 else 1.0) for x in (2.0, 1.9, 1.8))
        return ProbeResult(samples_per_s=1 / per_sample, peak_memory_bytes=int(peak), losses=losses,
                           data_wait_share=wait, steps=steps)


def _space(**kw: object) -> SearchSpace:
    return SearchSpace(target_global_batch=64, micro_batch_size=micro_batch_candidates(64), **kw)  # type: ignore[arg-type]


def test_micro_batch_candidates_divide_the_global_batch() -> None:
    assert micro_batch_candidates(64) == (1, 2, 4, 8, 16, 32, 64)
    assert micro_batch_candidates(48) == (1, 2, 4, 8, 16, 48)
    assert micro_batch_candidates(64, largest=10) == (1, 2, 4, 8)


def test_memory_fit_caps_the_micro_batch_without_probing_past_it() -> None:
    target = FormulaTarget()
    # peak = 1000 + 100 m; budget 3000, margin 10%: usable 2700 -> m <= 17 -> the largest candidate is 16
    result = search(target, _space(), SearchSettings(memory_budget_bytes=3_000))
    assert result.config["micro_batch_size"] == 16 and result.config["grad_accum"] == 4
    probed = sorted({int(c["micro_batch_size"]) for c in target.calls})  # type: ignore[call-overload]
    assert probed == [1, 2, 4, 8, 16]                       # 32 and 64 were never run
    # the prediction at 16 comes from the sizes below it (a straight line): 1000 + 100 * 16 = 2600
    assert result.predicted_peak_bytes == pytest.approx(2_600)
    assert result.result.peak_memory_bytes == 2_600


def test_out_of_memory_at_batch_one_is_a_clear_error_not_a_crash() -> None:
    target = FormulaTarget(hard_limit=500)                  # 1000 + 100 * 1 > 500: even batch 1 fails
    with pytest.raises(AdvisorError, match="micro-batch 1 already fails.*out of memory"):
        search(target, _space(), SearchSettings(memory_budget_bytes=10_000))


def test_oom_during_the_climb_is_backed_off_and_reported() -> None:
    target = FormulaTarget(hard_limit=1000 + 100 * 20)      # 32 and up run out of memory
    result = search(target, _space(), SearchSettings())     # no budget given: the OOM is found by probing
    assert result.config["micro_batch_size"] == 16
    assert any("ran out of memory" in n for n in result.notes)


def test_loader_workers_swept_until_data_wait_is_gone() -> None:
    # data 0.004 s/sample; compute at m=64: 0.001 * (1 + 8/64) = 0.001125 s
    # workers 1: max(0.001125, 0.002) = 0.002; 2: 0.001333; 4: max(0.001125, 0.0008) = 0.001125
    target = FormulaTarget(data_s=0.004)
    space = _space(num_workers=(0, 1, 2, 4))
    result = search(target, space, SearchSettings(), start={"micro_batch_size": 64})
    assert result.config["num_workers"] == 4
    assert result.result.samples_per_s == pytest.approx(1 / 0.001125)
    assert result.result.data_wait_share == 0.0


def test_a_script_s_own_slow_autocast_is_measured_against_fp32() -> None:
    """A script running bf16 autocast where bf16 is emulated (this hardware's space holds fp32 only): the
    search starts from the script's precision and A/Bs fp32 against it (3.5x the compute at bf16)."""
    slow = FormulaTarget(bf16_time=3.5)
    result = search(slow, _space(amp=("fp32",)), SearchSettings(), start={"micro_batch_size": 64, "amp": "bf16"})
    assert slow.calls[0]["amp"] == "bf16"                      # the baseline: the script as it is
    assert result.config["amp"] == "fp32"
    assert any(f.rule_id == "probe.amp" and "not fast on this hardware" in " ".join(f.evidence)
               for f in result.findings)
    # where bf16 is fast (in the space), the script's own choice is kept and not probed against fp32
    fast = FormulaTarget()
    kept = search(fast, _space(amp=("fp32", "bf16")), SearchSettings(), start={"micro_batch_size": 64, "amp": "bf16"})
    assert kept.config["amp"] == "bf16" and all(c["amp"] == "bf16" for c in fast.calls)


def test_precision_needs_a_gain_and_agreeing_losses() -> None:
    space = _space(amp=("fp32", "bf16"))
    ok = search(FormulaTarget(), space, SearchSettings(), start={"micro_batch_size": 64})
    assert ok.config["amp"] == "bf16"
    assert any(f.rule_id == "probe.amp" and f.confidence == "high" for f in ok.findings)
    bad = search(FormulaTarget(bf16_loss_factor=1.10), space, SearchSettings(), start={"micro_batch_size": 64})
    # losses differ by 10% > the 5% tolerance: fp32 kept, and the note says why
    assert bad.config["amp"] == "fp32"
    assert any("disagree" in n for n in bad.notes)


def test_checkpointing_only_when_memory_capped_the_batch() -> None:
    # overhead 32: compute at m=16 is 0.001 * (1 + 2) = 0.003 s (333/s). Budget 3000 caps plain m at 16.
    # With checkpointing peak = 1000 + 25 m fits m=64: 0.001 * (1 + 0.5) * 4/3 = 0.002 s (500/s) > 333/s
    space = _space(activation_checkpointing=(False, True))
    result = search(FormulaTarget(overhead=32), space, SearchSettings(memory_budget_bytes=3_000))
    assert result.config["activation_checkpointing"] is True and result.config["micro_batch_size"] == 64
    assert result.result.samples_per_s == pytest.approx(500)
    # without a memory cap checkpointing is never tried (it only adds recomputation)
    free = FormulaTarget(overhead=32)
    search(free, space, SearchSettings())
    assert not any(c.get("activation_checkpointing") for c in free.calls)


def test_checkpointing_that_cannot_win_is_probed_once() -> None:
    # overhead 0.5: compute is 0.001 * (1 + 0.5/m) s per sample; the largest gain of one doubling is the
    # first, 1 -> 2: 1.5 / 1.25 = 1.2. Budget 3000 caps plain m at 16 (as above). Checkpointing at 16 is
    # 3/4 the speed, so at 32 it can reach at most 0.75 * 1.2 = 0.9 of plain m=16 < 1.03: no climb.
    space = _space(activation_checkpointing=(False, True))
    target = FormulaTarget(overhead=0.5)
    result = search(target, space, SearchSettings(memory_budget_bytes=3_000))
    assert result.config["activation_checkpointing"] is False and result.config["micro_batch_size"] == 16
    checkpointed = [c["micro_batch_size"] for c in target.calls if c.get("activation_checkpointing")]
    assert checkpointed == [16]
    assert any("cannot win" in n for n in result.notes)


def test_search_probes_far_fewer_configs_than_the_grid() -> None:
    space = _space(num_workers=(0, 1, 2, 4), amp=("fp32", "bf16"), activation_checkpointing=(False, True))
    target = FormulaTarget(data_s=0.002)
    result = search(target, space, SearchSettings(memory_budget_bytes=5_000))
    grid = space.grid_size            # 7 sizes x 4 workers x 2 precisions x 2 = 112 (one prefetch value)
    assert grid == 7 * 4 * 2 * 2
    assert len(target.calls) < grid * 0.2
    best = max((target.run(c, 1) for c in space.grid()), key=lambda r: r.samples_per_s or 0.0
               if (r.peak_memory_bytes or 0) <= 5_000 else 0.0)
    assert result.result.samples_per_s >= 0.95 * (best.samples_per_s or 0.0)  # type: ignore[operator]


def test_time_budget_stops_new_knobs() -> None:
    result = search(FormulaTarget(), _space(amp=("fp32", "bf16")), SearchSettings(time_budget_s=1e-9))
    assert any("time budget" in n for n in result.notes) and result.config["amp"] == "fp32"


def test_loss_disagreement_hand_derived() -> None:
    # |2.2 - 2.0| / 2.0 = 0.1 and |1.0 - 1.0| / 1.0 = 0 -> mean 0.05
    assert loss_disagreement((2.0, 1.0), (2.2, 1.0, 9.9)) == pytest.approx(0.05)
    assert loss_disagreement((), (1.0,)) is None


def test_space_validates_candidates() -> None:
    with pytest.raises(ValueError, match="do not divide"):
        SearchSpace(target_global_batch=64, micro_batch_size=(3, 8))
    with pytest.raises(ValueError, match="fp32 reference"):
        SearchSpace(target_global_batch=8, micro_batch_size=(8,), amp=("bf16",))


@dataclass
class ScriptedTarget:
    """Returns the listed samples/s for each micro-batch size in turn (a noisy machine, written down)."""

    rates: dict[int, list[float]]
    supported: frozenset[str] = frozenset({"micro_batch_size"})
    calls: list[int] = field(default_factory=list)

    def run(self, config: Mapping[str, object], steps: int) -> ProbeResult:
        m = int(config["micro_batch_size"])  # type: ignore[call-overload]
        self.calls.append(m)
        return ProbeResult(samples_per_s=self.rates[m].pop(0), losses=(1.0,), data_wait_share=0.0, steps=steps)


def test_close_calls_are_measured_again_before_deciding() -> None:
    # first look: 8 is 4% slower than 4 (96 vs 100), inside the 10% band -> both measured again:
    # means 4: (100 + 100) / 2 = 100, 8: (96 + 120) / 2 = 108 -> 8 is kept
    target = ScriptedTarget(rates={4: [100.0, 100.0], 8: [96.0, 120.0]})
    space = SearchSpace(target_global_batch=8, micro_batch_size=(4, 8))
    result = search(target, space, SearchSettings(), start={"micro_batch_size": 4})
    assert result.config["micro_batch_size"] == 8
    assert target.calls == [4, 8, 4, 8]
    assert any(t.purpose == "confirm" for t in result.trials)


def test_extra_candidates_only_with_a_measured_gain() -> None:
    space = _space(extras=("compile",))
    # compile makes compute 20% faster at m=64: 0.001125 s -> 0.0009 s per sample
    fast = search(FormulaTarget(compile_factor=0.8), space, SearchSettings(), start={"micro_batch_size": 64})
    assert fast.config["compile"] is True and fast.result.samples_per_s == pytest.approx(1 / 0.0009)
    slow = search(FormulaTarget(compile_factor=1.1), space, SearchSettings(), start={"micro_batch_size": 64})
    assert "compile" not in slow.config and any("compile: no measured gain" in n for n in slow.notes)


def test_steps_along_one_knob_become_one_recommendation() -> None:
    # FormulaTarget, overhead 8: m=8 -> 16 -> 32 -> 64 each measured faster; one finding for the micro-batch
    result = search(FormulaTarget(), _space(), SearchSettings(), start={"micro_batch_size": 8})
    micro = [f for f in result.findings if f.rule_id == "probe.micro_batch_size"]
    assert len(micro) == 1 and micro[0].settings == {"micro_batch_size": 64, "grad_accum": 1}
    # compounded gain = rate(64) / rate(8) - 1 = (1 + 8/8) / (1 + 8/64) - 1 = 2 / 1.125 - 1
    assert micro[0].expected_gain == pytest.approx(2 / 1.125 - 1)


def test_fixed_accumulation_searches_the_own_size_and_labels_what_ran() -> None:
    """A script accumulates 4 micro-batches of 6 in its own code; the target cannot change that. Every
    configuration carries grad_accum=4, 6 (not a power of two, and not a divisor-derived size) is the
    baseline, and the evidence names the accumulation and global batch each probe really ran with."""
    target = FormulaTarget()
    space = SearchSpace(target_global_batch=24, micro_batch_size=(6, 8, 24), grad_accum=4)
    result = search(target, space, SearchSettings(), start={"micro_batch_size": 6})
    assert target.calls[0]["micro_batch_size"] == 6                      # the script's own size first
    assert {c["grad_accum"] for c in target.calls} == {4}                 # never a split that cannot run
    # samples/s = 1 / (0.001 (1 + 8/m)): m=6 -> 1000 / (1 + 4/3) = 428.6; m=8 -> 500; m=24 -> 750
    assert result.config["micro_batch_size"] == 24 and result.config["grad_accum"] == 4
    (f,) = [f for f in result.findings if f.rule_id == "probe.micro_batch_size"]
    assert f.evidence[0] == ("micro_batch_size=6 grad_accum=4 (global batch 24): 428.6 samples/s; "
                             "micro_batch_size=24 grad_accum=4 (global batch 96): 750 samples/s (measured)")
    assert f.settings == {"micro_batch_size": 24}                         # grad_accum did not change


def test_fixed_accumulation_needs_no_divisor_and_must_be_positive() -> None:
    assert SearchSpace(target_global_batch=64, micro_batch_size=(6, 32), grad_accum=4).config(
        micro_batch_size=6)["grad_accum"] == 4                            # 6 does not divide 64: allowed
    with pytest.raises(ValueError, match="grad_accum must be >= 1"):
        SearchSpace(target_global_batch=24, micro_batch_size=(6,), grad_accum=0)
    # without it, a recipe's accumulation still follows from the size: 64 / 16
    assert _space().config(micro_batch_size=16)["grad_accum"] == 4
