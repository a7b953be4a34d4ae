"""Which device the Profiler times on, and how the run info names it and torch."""

from __future__ import annotations

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
