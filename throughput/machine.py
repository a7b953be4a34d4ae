"""What machine this process runs on: the CPU model and its feature flags (from /proc/cpuinfo).

A torch-free leaf that every layer may import (capture names the CPU in the run info with it).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path


@functools.lru_cache(maxsize=1)
def cpu_model_name() -> str:
    """The CPU model from /proc/cpuinfo, else platform.processor(), else 'cpu'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags (e.g. 'amx_bf16', 'avx512_bf16'); empty where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """True when the CPU runs bf16 matmuls natively (AMX or AVX512-BF16), not by emulation."""
    flags = cpu_flags()
    return bool({"amx_bf16", "avx512_bf16"} & flags)
