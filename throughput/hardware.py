"""Facts about hardware. Peak FLOP tables live here as data, each entry with its source.

What this machine is (CPU model and flags) is read by ``throughput/machine.py``, a leaf that capture
may import too; its functions are re-exported here for existing callers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Mapping

from throughput.machine import cpu_flags, cpu_has_fast_bf16, cpu_model_name

__all__ = ["cpu_flags", "cpu_has_fast_bf16", "cpu_model_name", "normalize_dtype", "peak_flops", "throttle_names"]


# -- which reduced precisions run fast where ---------------------------------------------------------
# bf16 and TF32 tensor cores arrived with Ampere, compute capability 8.0
# (https://docs.nvidia.com/cuda/cuda-c-programming-guide/#compute-capabilities); older GPUs run fp16 on
# tensor cores (Volta, Turing) and need a GradScaler for it. A saved session without a capability is
# matched on the device name.
BF16_MIN_CUDA_CAPABILITY: Final = (8, 0)
AMPERE_OR_NEWER_NAMES: Final = ("a100", "a10", "a30", "a40", "a800", "a6000", "l4", "l40", "h100", "h200", "h800",
                                "h20", "gh200", "b100", "b200", "gb200", "rtx 30", "rtx 40", "rtx 50")
PRE_AMPERE_NAMES: Final = ("v100", "t4", "p100", "p40", "p4", "k80", "m60", "titan v", "titan rtx", "rtx 20",
                           "gtx", "quadro rtx")
# Measured on an AVX2-only CPU (no AMX, no AVX512-BF16): a --set amp=bf16 run took 0.28x the fp32 speed
# (forward 55 ms -> 336 ms), because bf16 matmuls are emulated there (issue 15).
CPU_BF16_EMULATED_SPEED: Final = "0.28x the fp32 speed measured on an AVX2-only CPU"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrecisionOptions:
    """What to try on this hardware: ``candidates`` (fp32 first, then the reduced precisions worth an
    A/B), whether to enable ``tf32``, and ``left_out``: one sentence per option not offered, saying why."""

    candidates: tuple[str, ...]
    tf32: bool
    left_out: tuple[str, ...]

    @property
    def reduced(self) -> str | None:
        """The reduced precision to suggest (bf16 or fp16), None where none runs fast."""
        return self.candidates[1] if len(self.candidates) > 1 else None


def precision_options(device: str, *, cuda_capability: tuple[int, int] | None = None, device_name: str = "",
                      cpu_fast_bf16: bool | None = None) -> PrecisionOptions:
    """The one rule for precision advice (the verdict, the rules and the search all call it): bf16
    where the hardware runs it natively (CUDA capability >= 8.0; a CPU with AMX or AVX512-BF16), fp16
    with a GradScaler on older GPUs, TF32 only on Ampere or newer. Unknown facts give no suggestion."""
    if device == "cuda":
        if cuda_capability is None and device_name:   # a session recorded before capabilities were
            name = device_name.lower()
            if any(tag in name for tag in AMPERE_OR_NEWER_NAMES):
                cuda_capability = BF16_MIN_CUDA_CAPABILITY
            elif any(tag in name for tag in PRE_AMPERE_NAMES):
                cuda_capability = (7, 0)
        if cuda_capability is None:
            return PrecisionOptions(candidates=("fp32",), tf32=False, left_out=(
                f"precision not suggested: the compute capability of {device_name or 'this GPU'} is not known",))
        cap = f"{cuda_capability[0]}.{cuda_capability[1]}"
        if cuda_capability >= BF16_MIN_CUDA_CAPABILITY:
            return PrecisionOptions(candidates=("fp32", "bf16"), tf32=True, left_out=(
                "fp16 left out: bf16 is as fast on this GPU and needs no GradScaler",))
        return PrecisionOptions(candidates=("fp32", "fp16"), tf32=False, left_out=(
            f"bf16 left out: compute capability {cap} < 8.0 has no bf16 tensor cores (fp16 with a GradScaler "
            "instead)", f"TF32 left out: compute capability {cap} < 8.0 has no TF32 tensor cores"))
    if cpu_fast_bf16:
        return PrecisionOptions(candidates=("fp32", "bf16"), tf32=False, left_out=(
            "fp16 left out: CPUs have no fast fp16 matmuls (bf16 is native here: AMX or AVX512-BF16)",))
    if cpu_fast_bf16 is None:
        return PrecisionOptions(candidates=("fp32",), tf32=False, left_out=(
            "bf16 not suggested: the run did not record whether this CPU has AMX or AVX512-BF16",))
    return PrecisionOptions(candidates=("fp32",), tf32=False, left_out=(
        f"bf16 left out: this CPU has neither AMX nor AVX512-BF16, so bf16 matmuls are emulated "
        f"({CPU_BF16_EMULATED_SPEED})",))


# -- peak dense FLOP/s per device and dtype ---------------------------------------------------------
# Dense figures only: datasheets that quote "with sparsity" are halved. fp32 is the non-tensor-core
# rate; tf32/bf16/fp16 are tensor-core rates with fp32 accumulation (what PyTorch uses).
_HOPPER = "https://www.nvidia.com/en-us/data-center/h100/"
PEAK_FLOPS: Final[Mapping[str, Mapping[str, float]]] = {
    # https://www.nvidia.com/en-us/data-center/h200/  (H200 SXM: 1,979 TF bf16 with sparsity -> 989.5 dense)
    "h200 sxm": {"bf16": 989.5e12, "fp16": 989.5e12, "tf32": 494.7e12, "fp32": 66.9e12},
    # https://www.nvidia.com/en-us/data-center/h200/  (H200 NVL: 1,671 TF bf16 with sparsity)
    "h200 nvl": {"bf16": 835.5e12, "fp16": 835.5e12, "tf32": 417.5e12, "fp32": 60.0e12},
    # https://www.nvidia.com/en-us/data-center/h100/  (H100 SXM: 1,979 TF bf16 with sparsity)
    "h100 sxm": {"bf16": 989.5e12, "fp16": 989.5e12, "tf32": 494.7e12, "fp32": 66.9e12},
    # https://www.nvidia.com/en-us/data-center/h100/  (H100 NVL: 1,671 TF bf16 with sparsity)
    "h100 nvl": {"bf16": 835.5e12, "fp16": 835.5e12, "tf32": 417.5e12, "fp32": 60.0e12},
    # https://www.nvidia.com/en-us/data-center/h100/  (H100 PCIe: 1,513 TF bf16 with sparsity)
    "h100 pcie": {"bf16": 756.5e12, "fp16": 756.5e12, "tf32": 378.0e12, "fp32": 51.2e12},
    # https://www.nvidia.com/en-us/data-center/a100/  (dense 312 TF bf16; sparsity 624)
    "a100 sxm": {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    # https://www.nvidia.com/en-us/data-center/a100/  (PCIe has the same peak rates as SXM)
    "a100 pcie": {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    # https://www.nvidia.com/en-us/data-center/l4/  (242 TF bf16 / 120 TF tf32 with sparsity)
    "l4": {"bf16": 121e12, "fp16": 121e12, "tf32": 60e12, "fp32": 30.3e12},
    # https://www.nvidia.com/en-us/data-center/l40s/  (datasheet: 362.05 dense | 733 sparse bf16)
    "l40s": {"bf16": 362.05e12, "fp16": 362.05e12, "tf32": 183e12, "fp32": 91.6e12},
    # https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf
    # (RTX 4090, appendix table: fp16/bf16 tensor with fp32 accumulate 165.2 dense, tf32 82.6 dense)
    "rtx 4090": {"bf16": 165.2e12, "fp16": 165.2e12, "tf32": 82.6e12, "fp32": 82.6e12},
}
PEAK_FLOPS_SOURCES: Final[Mapping[str, str]] = {
    "h200 sxm": "https://www.nvidia.com/en-us/data-center/h200/",
    "h200 nvl": "https://www.nvidia.com/en-us/data-center/h200/",
    "h100 sxm": _HOPPER,
    "h100 nvl": _HOPPER,
    "h100 pcie": _HOPPER,
    "a100 sxm": "https://www.nvidia.com/en-us/data-center/a100/",
    "a100 pcie": "https://www.nvidia.com/en-us/data-center/a100/",
    "l4": "https://www.nvidia.com/en-us/data-center/l4/",
    "l40s": "https://www.nvidia.com/en-us/data-center/l40s/",
    "rtx 4090": "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf",
}
# (pattern on the lower-cased device name, table key); first match wins, so specific names come first.
_DEVICE_PATTERNS: Final[tuple[tuple[str, str], ...]] = (
    (r"h200.*nvl", "h200 nvl"), (r"h200", "h200 sxm"),
    (r"h100.*nvl", "h100 nvl"), (r"h100.*pcie", "h100 pcie"), (r"h100", "h100 sxm"),
    (r"a100.*pcie", "a100 pcie"), (r"a100", "a100 sxm"),
    (r"\bl40s\b", "l40s"), (r"\bl4\b", "l4"), (r"rtx 4090", "rtx 4090"),
)
DTYPE_ALIASES: Final[Mapping[str, str]] = {
    "bfloat16": "bf16", "torch.bfloat16": "bf16", "float16": "fp16", "half": "fp16",
    "torch.float16": "fp16", "float32": "fp32", "float": "fp32", "torch.float32": "fp32",
    "tensorfloat32": "tf32",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PeakFlops:
    """A device's peak dense FLOP/s for one dtype and where the figure comes from (URL or 'measured')."""

    device_key: str
    dtype: str
    flops_per_s: float
    source: str


def normalize_device_name(name: str) -> str | None:
    """The PEAK_FLOPS key for a device name such as 'NVIDIA H100 80GB HBM3', or None if unknown."""
    lowered = " ".join(name.lower().replace("-", " ").replace("_", " ").split())
    for pattern, key in _DEVICE_PATTERNS:
        if re.search(pattern, lowered):
            return key
    return None


def normalize_dtype(dtype: str) -> str:
    """'torch.bfloat16' -> 'bf16' etc.; unknown names are returned lower-cased."""
    d = dtype.strip().lower()
    return DTYPE_ALIASES.get(d, d)


def peak_flops(device_name: str, dtype: str) -> PeakFlops | None:
    """The table's dense peak for this device and dtype; None when either is not in the table."""
    key = normalize_device_name(device_name)
    d = normalize_dtype(dtype)
    if key is None or d not in PEAK_FLOPS[key]:
        return None
    return PeakFlops(device_key=key, dtype=d, flops_per_s=PEAK_FLOPS[key][d], source=PEAK_FLOPS_SOURCES[key])


# NVML clock-event reason bits that mean "slowed down" (0x1, idle, is not one of them).
# https://docs.nvidia.com/deploy/nvml-api/group__nvmlClocksEventReasons.html
THROTTLE_BITS: Final[Mapping[int, str]] = {
    0x2: "application clocks setting", 0x4: "software power cap", 0x8: "hardware slowdown",
    0x10: "sync boost", 0x20: "software thermal slowdown", 0x40: "hardware thermal slowdown",
    0x80: "hardware power brake", 0x100: "display clock setting",
}


def throttle_names(mask: int) -> list[str]:
    """Readable names of the slowdown bits set in an NVML clock-event-reasons mask."""
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]
