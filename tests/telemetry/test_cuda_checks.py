"""CUDA-only checks (skipped without a GPU): the same measurements benchmarks/gpu_check.py prints."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.cuda
@needs_cuda
def test_events_resolve_without_per_step_sync() -> None:
    from benchmarks.gpu_check import check_events_and_phases
    r = check_events_and_phases(steps=20, width=2048, tokens=4096)
    assert r["syncs_in_loop"] == 0                      # nothing waits for the GPU inside the loop
    assert r["timer_synchronize_calls"] == 1            # the one synchronize of the run, in stop()
    assert r["resolved_after_stop"] == 20
    fwd = r["phases"]["forward"]
    assert fwd["device_mean_s"] is not None and fwd["device_mean_s"] > 0
    # phase device times nest inside the outer pair of events around the whole loop
    assert 0 < r["device_busy_s"] <= r["outer_elapsed_s"] * 1.01


@pytest.mark.cuda
@needs_cuda
def test_mfu_and_nvml_on_a_bf16_mlp() -> None:
    from benchmarks.gpu_check import check_mfu_and_nvml
    r = check_mfu_and_nvml(steps=30, width=4096, tokens=8192)
    # FlopCounterMode agrees with 2*T*w*w per matmul, 11 matmuls per step (4 fwd, 4 grad-weight, 3 grad-input)
    assert r["flops_per_step"] == r["hand_flops_per_step"]
    if r["peak_flops"] is None:
        pytest.skip(f"{r['device_name']} is not in the peak table: {r['mfu_reason']}")
    assert r["mfu"] is not None and 0.0 < r["mfu"] <= 1.0, r["mfu_reason"]
    if not any("GPU telemetry not available" in n for n in r["notes"]):
        assert r["nvml"]["gpu0 mem_used_bytes"]["max"] > 0
        assert r["nvml"]["gpu0 power_w"]["max"] > 0
