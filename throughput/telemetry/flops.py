"""FLOPs of one training step (torch's FlopCounterMode) and a measured CPU peak for MFU.

FlopCounterMode counts matmuls, convolutions and attention (2 FLOPs per multiply-add) in forward
and backward; elementwise work and the optimizer are not counted, as is usual for MFU.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from throughput.hardware import normalize_dtype

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


def mfu_info(device: str, dtype: str, flops_per_step: float | None, measure_cpu: bool = True) -> dict[str, Any]:
    """RunInfo fields for MFU (``flops_per_step``, ``dtype`` and, on CPU, a measured ``peak_flops`` with
    its ``peak_flops_source``): put them into ``Profiler.info_overrides``. A GPU's peak is not looked
    up here: analysis (``analysis/mfu.py``) reads it from ``throughput.hardware``'s table by device name."""
    d = normalize_dtype(dtype)
    out: dict[str, Any] = {"flops_per_step": flops_per_step, "dtype": d}
    if device == "cpu" and measure_cpu and d in _TORCH_DTYPES:
        out["peak_flops"] = measure_cpu_peak_flops(d)
        out["peak_flops_source"] = f"measured: {d} 512x512 matmul on this CPU"
    return out


class StepFlopCounter:
    """Counts the FLOPs of one whole training step of a running Profiler (zero-code friendly).

    FlopCounterMode is entered when step ``at_step - 1`` closes (or at start for step 0) and left
    when step ``at_step`` closes; the count becomes the run's ``flops_per_step``. The mode slows the
    step it counts, so choose a warm-up step (the default: the last one).
    """

    def __init__(self, at_step: int = 1, dtype: str = "fp32") -> None:
        if at_step < 0:
            raise ValueError(f"at_step must be >= 0, got {at_step}")
        self.at_step = at_step
        self.dtype = dtype
        self._mode: Any = None
        self.flops: float | None = None

    def begin(self) -> None:
        from torch.utils.flop_counter import FlopCounterMode
        self._mode = FlopCounterMode(display=False)
        self._mode.__enter__()

    def on_step(self, prof: Any, index: int) -> None:
        if self._mode is None and self.flops is None and index == self.at_step - 1:
            self.begin()
        elif self._mode is not None and index == self.at_step:
            mode, self._mode = self._mode, None
            mode.__exit__(None, None, None)
            self.flops = float(mode.get_total_flops())
            if self.flops > 0:
                set_flops_per_step(prof, self.flops, self.dtype)
                prof.add_note(f"FLOPs per step counted with FlopCounterMode on step {index} "
                              f"({self.flops:.3g}); that step ran slower while counted")
            else:
                prof.add_note(f"FlopCounterMode saw no matmul/conv FLOPs in step {index}; MFU not reported")

    def close(self, prof: Any) -> None:
        """Leave the mode if the run ended inside the counted step."""
        if self._mode is not None:
            mode, self._mode = self._mode, None
            mode.__exit__(None, None, None)
            prof.add_note(f"FLOPs not counted: the run ended before step {self.at_step} closed")


def set_flops_per_step(prof: Any, flops_per_step: float, dtype: str = "fp32", measure_cpu: bool = True) -> None:
    """Record FLOPs per step (counted or given by the user) and the peak on a Profiler, for MFU."""
    if not flops_per_step > 0:
        raise ValueError(f"flops_per_step must be > 0, got {flops_per_step}")
    prof.info_overrides.update(mfu_info(prof.device, dtype, float(flops_per_step), measure_cpu))
