"""Which device the Profiler times on, and how the run info names it and torch."""

from __future__ import annotations

import os
import sys

from throughput.timing.cuda import EventFactory


def resolve_device(device: str, event_factory: EventFactory | None) -> str:
    if event_factory is not None or device == "cuda":
        return "cuda"
    if device == "cpu":
        return "cpu"
    torch = sys.modules.get("torch")
    try:
        return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    except Exception:
        return "cpu"


def device_name(device: str) -> str:
    if device == "cuda":
        try:
            import torch
            return str(torch.cuda.get_device_name())
        except Exception:
            return "cuda (unknown)"
    from throughput.machine import cpu_model_name
    return cpu_model_name()


def torch_version() -> str:
    torch = sys.modules.get("torch")
    return str(getattr(torch, "__version__", "")) if torch is not None else ""


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):   # not Linux
        return max(1, os.cpu_count() or 1)


def hardware_context(device: str) -> dict[str, str | bool | int]:
    """Facts the advice depends on, recorded as a ``context`` event so that a saved session is advised
    for the hardware it ran on: whether the CPU runs bf16 natively, the CUDA capability, and the cores
    this process may run on (``cpu_count``: its affinity, which a container or taskset narrows)."""
    from throughput.machine import cpu_has_fast_bf16
    ctx: dict[str, str | bool | int] = {"cpu_fast_bf16": cpu_has_fast_bf16(), "cpu_count": usable_cores()}
    torch = sys.modules.get("torch")
    if device == "cuda" and torch is not None:
        try:
            major, minor = torch.cuda.get_device_capability()
            ctx["cuda_capability"] = f"{major}.{minor}"
        except Exception:  # no usable device after all: the capability stays unknown
            pass
    return ctx
