"""One precision rule for the verdict, the advisor's rules and its search: bf16 only where the hardware
runs it fast (a CPU with AMX / AVX512-BF16, CUDA >= 8.0), fp16 + GradScaler on older GPUs, TF32 only on
Ampere or newer, and a sentence for every option left out. The CPU flags are mocked here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import throughput.hardware as hw
import throughput.machine as machine
from tests.helpers import make_session
from throughput.advisor.rules import RuleInput, precision, precision_notes, rule_input, slow_precision
from throughput.analysis.summary import summarize
from throughput.session.records import Event
from throughput.session.session import Session

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
SAPPHIRE_RAPIDS = AVX2_ONLY | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


@pytest.fixture()
def cpu(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Set the CPU's flags for the duration of a test: ``cpu(flags)``."""
    def set_flags(flags: frozenset[str]) -> None:
        # the flags are read in throughput.machine (hardware re-exports them): patch where they are looked up
        monkeypatch.setattr(machine, "cpu_flags", lambda: flags)
    return set_flags


def _compute_bound(fast_bf16: bool | None) -> Session:
    s = make_session(n_steps=4, forward=0.45, backward=0.45, optimizer=0.1)
    ctx = {} if fast_bf16 is None else {"cpu_fast_bf16": fast_bf16}
    return Session(info=s.info, steps=s.steps, events=(Event(kind="context", step=0, message="hardware", detail=ctx),))


def test_cpu_without_the_flags_gets_no_bf16_anywhere(cpu) -> None:  # type: ignore[no-untyped-def]
    cpu(AVX2_ONLY)
    assert not hw.cpu_has_fast_bf16()
    from throughput.capture.device import hardware_context
    assert hardware_context("cpu")["cpu_fast_bf16"] is False            # what a profile records here
    if not torch.cuda.is_available():
        from throughput.advisor.workload import precision_here, supported_precisions
        assert supported_precisions() == ("fp32",)                     # the search tries no bf16
        assert "neither AMX nor AVX512-BF16" in precision_here().left_out[0]
    s = summarize(_compute_bound(False))
    assert s.verdict.kind == "compute_bound"
    assert "bf16" not in s.verdict.action and s.verdict.action.startswith("torch.compile or a larger batch (changes")
    assert any("bf16 left out" in e and "0.28x" in e for e in s.verdict.evidence)
    x = RuleInput(summary=s, context={"cpu_fast_bf16": False})
    assert precision(x) is None and "bf16 left out" in precision_notes(x)[0]


def test_cpu_with_amx_is_offered_bf16_to_measure(cpu) -> None:  # type: ignore[no-untyped-def]
    cpu(SAPPHIRE_RAPIDS)
    assert hw.cpu_has_fast_bf16()
    if not torch.cuda.is_available():
        from throughput.advisor.workload import supported_precisions
        assert supported_precisions() == ("fp32", "bf16")
    s = summarize(_compute_bound(True))
    assert s.verdict.action.startswith("bf16 autocast")
    f = precision(RuleInput(summary=s, context={"cpu_fast_bf16": True}))
    assert f is not None and f.settings == {"amp": "bf16"} and f.expected_gain is None   # to be measured


def test_a_session_that_did_not_record_the_cpu_gets_no_guess() -> None:
    s = summarize(_compute_bound(None))
    assert "bf16" not in s.verdict.action and any("did not record" in e for e in s.verdict.evidence)


@pytest.mark.parametrize("capability, candidates, tf32", [((9, 0), ("fp32", "bf16"), True),
                                                         ((8, 0), ("fp32", "bf16"), True),
                                                         ((7, 5), ("fp32", "fp16"), False)])
def test_gpu_rule_by_compute_capability(capability: tuple[int, int], candidates: tuple[str, ...], tf32: bool) -> None:
    opts = hw.precision_options("cuda", cuda_capability=capability)
    assert (opts.candidates, opts.tf32) == (candidates, tf32)
    if capability < (8, 0):
        assert any("bf16 left out" in n for n in opts.left_out) and any("TF32 left out" in n for n in opts.left_out)


def test_profile_records_the_cpu_kind_and_its_verdict_follows(cpu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real zero-code profile on a mocked AVX2-only CPU: the session records it, and the compute-bound
    verdict of that session never suggests bf16."""
    cpu(AVX2_ONLY)
    script = tmp_path / "mlp.py"
    # a batch of 1024 through two 256-wide layers: the step is matmuls, the SGD update of 130k weights is not
    script.write_text("import torch\nm = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), "
                      "torch.nn.Linear(256, 256))\nopt = torch.optim.SGD(m.parameters(), lr=0.01)\n"
                      "x = torch.randn(1024, 256)\nfor _ in range(6):\n    m(x).square().mean().backward()\n"
                      "    opt.step()\n    opt.zero_grad()\n")
    from throughput.capture.runner import Target
    from throughput.capture.zerocode import ProfileOptions, profile_target
    session, result = profile_target(Target(path=str(script)), ProfileOptions(warmup_steps=1))
    assert result.exit_code == 0
    s = summarize(session)
    assert any(e.detail.get("cpu_fast_bf16") is False for e in session.events if e.kind == "context")
    assert s.verdict.kind == "compute_bound" and "bf16" not in s.verdict.action


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_this_gpu_gets_the_rule_for_its_capability() -> None:
    from throughput.advisor.workload import device_fixed_settings, precision_here
    major, minor = torch.cuda.get_device_capability()
    opts = precision_here()
    assert opts.reduced == ("bf16" if (major, minor) >= (8, 0) else "fp16")
    assert device_fixed_settings() == {"pin_memory": True, "tf32": (major, minor) >= (8, 0)}


def _script_autocast(session: Session, amp: str) -> Session:
    """The session as the zero-code hooks record a script that runs its forward under its own autocast."""
    seen = Event(kind="context", step=0, message="autocast", detail={"script_amp": amp})
    return Session(info=session.info, steps=session.steps, events=(*session.events, seen))


def test_a_script_s_own_bf16_autocast_on_a_cpu_that_emulates_bf16_is_advised_out() -> None:
    """QA's script: bf16 autocast on an AVX2-only CPU ran 10x slower than fp32, and the verdict read the
    run as fp32 ("bf16 left out") and advised a larger batch: nothing told the user to take it out."""
    s = summarize(_script_autocast(_compute_bound(False), "bf16"))
    assert s.verdict.action.startswith("train without bf16 autocast: measure it with --set amp=fp32")
    assert any("runs bf16 autocast" in e and "emulated" in e for e in s.verdict.evidence)
    x = rule_input(_script_autocast(_compute_bound(False), "bf16"))
    assert x.dtype == "bf16" and precision(x) is None
    f = slow_precision(x)
    assert f is not None and f.settings == {"amp": "fp32"} and f.changes_training is not None
    assert f.action == "take the script's torch.autocast out (measure first: --set amp=fp32)"
    # where bf16 is native, the same autocast is no finding; an unknown CPU gives none either
    assert slow_precision(rule_input(_script_autocast(_compute_bound(True), "bf16"))) is None
    assert slow_precision(rule_input(_script_autocast(_compute_bound(None), "bf16"))) is None
    # --set amp=fp32 (autocast off around the forward) is what the run then ran in
    measured = _script_autocast(_compute_bound(False), "bf16")
    off = Event(kind="context", step=0, message="overrides", detail={"override_amp": "fp32"})
    assert rule_input(Session(info=measured.info, steps=measured.steps, events=(*measured.events, off))).dtype == "fp32"


def test_an_autocast_entered_inside_the_model_is_advised_out_where_it_is_entered() -> None:
    """Accelerate's prepare() and the HF Trainer enter their autocast inside the model's forward, where
    --set amp=fp32 cannot reach: the advice says where to turn it off, and prints no --set to apply."""
    seen = Event(kind="context", step=0, message="autocast", detail={"script_amp": "bf16", "autocast_inside": True})
    base = _compute_bound(False)
    session = Session(info=base.info, steps=base.steps, events=(*base.events, seen))
    s = summarize(session)
    assert "mixed_precision='no'" in s.verdict.action and "--set amp=fp32 cannot reach it" in s.verdict.action
    f = slow_precision(rule_input(session))
    assert f is not None and f.settings == {} and "bf16=False" in f.action
