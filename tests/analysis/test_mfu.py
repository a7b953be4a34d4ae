"""MFU arithmetic and the peak-FLOPs table (pure: no torch)."""

from __future__ import annotations

import pytest

from throughput.analysis.mfu import mfu, run_mfu
from throughput.hardware import PEAK_FLOPS, PEAK_FLOPS_SOURCES, normalize_device_name, peak_flops
from throughput.session.records import RunInfo, StepRecord


def test_mfu_hand_derived() -> None:
    # 1e12 FLOPs/step, 10 steps in 4 s -> 2.5e12 FLOP/s achieved; over a 1e13 peak -> 0.25
    m = mfu(1e12, steps=10, wall_s=4.0, peak_flops_per_s=1e13, peak_source="test")
    assert m.achieved_flops_per_s == pytest.approx(1e12 * 10 / 4.0)
    assert m.value == pytest.approx(0.25)
    assert m.reason == ""


def test_mfu_above_one_is_none_with_reason() -> None:
    # 1e12 * 10 / 1 s = 1e13 FLOP/s over a 5e12 peak would be 200%
    m = mfu(1e12, steps=10, wall_s=1.0, peak_flops_per_s=5e12)
    assert m.value is None
    assert "peak too low / FLOPs overcounted" in m.reason


@pytest.mark.parametrize("flops, peak, words", [
    (None, 1e12, "FLOPs per step unknown"),
    (1e9, None, "peak FLOP/s unknown"),
    (0.0, 1e12, "FLOPs per step unknown"),
])
def test_mfu_none_with_reason(flops: float | None, peak: float | None, words: str) -> None:
    m = mfu(flops, steps=3, wall_s=1.0, peak_flops_per_s=peak)
    assert m.value is None and words in m.reason


def _steps(n: int, dt: float) -> list[StepRecord]:
    return [StepRecord(index=i, start_s=i * dt, end_s=(i + 1) * dt, phase_s={}) for i in range(n)]


def test_run_mfu_uses_table_for_known_gpu() -> None:
    info = RunInfo(run_id="r", device="cuda", device_name="NVIDIA H100 80GB HBM3", dtype="bf16",
                   flops_per_step=989.5e12 * 0.5 * 0.1)
    # each step takes 0.1 s and does half of what the H100 SXM peak (989.5 TF dense bf16) does in 0.1 s
    m = run_mfu(info, _steps(4, 0.1))
    assert m.value == pytest.approx(0.5)
    assert m.peak_source.startswith("https://")


def test_run_mfu_unknown_gpu_is_none() -> None:
    info = RunInfo(run_id="r", device="cuda", device_name="Tesla K80", dtype="fp32", flops_per_step=1e9)
    m = run_mfu(info, _steps(4, 0.1))
    assert m.value is None and "not in throughput.hardware.PEAK_FLOPS" in m.reason


def test_run_mfu_cpu_uses_recorded_measured_peak() -> None:
    info = RunInfo(run_id="r", device="cpu", device_name="x86", flops_per_step=2e9, peak_flops=1e11,
                   peak_flops_source="measured: fp32 512x512 matmul on this CPU")
    # 2e9 FLOPs / 0.1 s = 2e10 FLOP/s over 1e11 -> 0.2
    m = run_mfu(info, _steps(5, 0.1))
    assert m.value == pytest.approx(0.2) and m.peak_source.startswith("measured")


@pytest.mark.parametrize("name, key", [
    ("NVIDIA H100 80GB HBM3", "h100 sxm"), ("NVIDIA H100 PCIe", "h100 pcie"), ("NVIDIA H100 NVL", "h100 nvl"),
    ("NVIDIA H200", "h200 sxm"), ("NVIDIA H200 NVL", "h200 nvl"), ("NVIDIA A100-SXM4-80GB", "a100 sxm"),
    ("NVIDIA A100 80GB PCIe", "a100 pcie"), ("NVIDIA L4", "l4"), ("NVIDIA L40S", "l40s"),
    ("NVIDIA GeForce RTX 4090", "rtx 4090"), ("NVIDIA L40", None), ("Tesla T4", None),
])
def test_device_names_normalize(name: str, key: str | None) -> None:
    assert normalize_device_name(name) == key


def test_table_is_dense_and_sourced() -> None:
    required = {"h200 sxm", "h100 sxm", "h100 pcie", "a100 sxm", "a100 pcie", "l4", "l40s", "rtx 4090"}
    assert required <= set(PEAK_FLOPS)
    for key, entry in PEAK_FLOPS.items():
        assert set(entry) == {"bf16", "fp16", "tf32", "fp32"}, key
        assert PEAK_FLOPS_SOURCES[key].startswith("https://"), key
        # tensor-core rates are ordered: bf16 == fp16 >= tf32 >= fp32 (vector rate)
        assert entry["bf16"] == entry["fp16"] >= entry["tf32"] >= entry["fp32"], key
    # the H100 SXM datasheet says 1,979 TF bf16 *with sparsity*; the dense figure is half of it
    assert PEAK_FLOPS["h100 sxm"]["bf16"] == pytest.approx(1979e12 / 2, rel=1e-3)


def test_peak_lookup_normalizes_dtype() -> None:
    entry = peak_flops("NVIDIA A100-SXM4-40GB", "torch.bfloat16")
    assert entry is not None and entry.flops_per_s == 312e12 and entry.dtype == "bf16"
    assert peak_flops("NVIDIA A100-SXM4-40GB", "int8") is None
