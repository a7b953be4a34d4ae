"""FLOPs of one training step (torch's FlopCounterMode) and a measured CPU peak for MFU.

FlopCounterMode counts matmuls, convolutions and attention (2 FLOPs per multiply-add) in forward
and backward; elementwise work and the optimizer are not counted, as is usual for MFU.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from throughput.hardware import normalize_dtype, peak_flops

_TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Run ``fn(*args, **kwargs)`` once under FlopCounterMode; return (FLOPs, fn's result).

    Pass a function that does one full training step (forward, loss, backward) to get FLOPs per step.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        result = fn(*args, **kwargs)
    return float(counter.get_total_flops()), result


def measure_cpu_peak_flops(dtype: str = "fp32", size: int = 512, seconds: float = 0.3) -> float:
    """Achieved FLOP/s of a square ``size`` matmul on this CPU in ``dtype``, best of a few repeats.

    A measured stand-in for the peak (CPUs have no useful datasheet figure); label it "measured".
    """
    import torch

    d = normalize_dtype(dtype)
    if d not in _TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_TORCH_DTYPES)}, got {dtype!r}")
    if size < 16 or seconds <= 0:
        raise ValueError(f"size must be >= 16 and seconds > 0, got size={size}, seconds={seconds}")
    tdtype = getattr(torch, _TORCH_DTYPES[d])
    a = torch.randn(size, size, dtype=tdtype)
    b = torch.randn(size, size, dtype=tdtype)
    torch.mm(a, b)  # warm-up: first call pays for kernel selection and allocation
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        dt = time.perf_counter() - t0
        best = max(best, 4 * 2 * size**3 / dt)
    return best


def mfu_info(device: str, device_name: str, dtype: str, flops_per_step: float | None,
             measure_cpu: bool = True) -> dict[str, Any]:
    """RunInfo fields for MFU (``flops_per_step``, ``peak_flops``, ``peak_flops_source``, ``dtype``):
    put them into ``Profiler.info_overrides``. GPUs use the table; CPUs a short measurement."""
    d = normalize_dtype(dtype)
    out: dict[str, Any] = {"flops_per_step": flops_per_step, "dtype": d}
    if device == "cpu":
        if measure_cpu and d in _TORCH_DTYPES:
            out["peak_flops"] = measure_cpu_peak_flops(d)
            out["peak_flops_source"] = f"measured: {d} 512x512 matmul on this CPU"
        return out
    entry = peak_flops(device_name, d)
    if entry is not None:
        out["peak_flops"], out["peak_flops_source"] = entry.flops_per_s, entry.source
    return out


def set_flops_per_step(prof: Any, flops_per_step: float, dtype: str = "fp32", measure_cpu: bool = True) -> None:
    """Record FLOPs per step (counted or given by the user) and the peak on a Profiler, for MFU."""
    if not flops_per_step > 0:
        raise ValueError(f"flops_per_step must be > 0, got {flops_per_step}")
    from throughput.capture.profiler import _device_name
    prof.info_overrides.update(mfu_info(prof.device, _device_name(prof.device), dtype, float(flops_per_step),
                                        measure_cpu))
