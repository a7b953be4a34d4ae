"""Markdown sections for the view window: top operators per phase, memory per phase. Formatting only."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from throughput.analysis.memory import MemorySummary
from throughput.analysis.operators import Operators
from throughput.report.format import percent, seconds


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.1f} MiB"


def _table(rows: list[list[str]], head: list[str]) -> str:
    return tabulate(rows, headers=head, tablefmt="github", disable_numparse=True)


def render_operators_md(ops: Operators | None, per_phase: int = 5) -> str:
    """'## Top operators per phase'; empty without an operator window."""
    if ops is None:
        return ""
    first, last = ops.window_steps
    slower = f", {ops.slowdown:.2f}x the steady-state step time" if ops.slowdown else ""
    parts = ["## Top operators per phase", "",
             f"torch.profiler over steps {first}-{last} ({seconds(ops.window_step_s)} a step under the "
             f"profiler{slower}; these steps are not in the figures above). Self time per step; share of "
             "the window's step time.", ""]
    device = any(o.device_self_s is not None for o in ops.top)
    head = ["phase", "operator", "self / step", "share", "calls / step"] + (["device self / step"] if device else [])
    rows: list[list[str]] = []
    shown: dict[str, int] = {}
    for o in ops.top:
        shown[o.phase] = shown.get(o.phase, 0) + 1
        if shown[o.phase] > per_phase:
            continue
        row = [o.phase, f"`{o.name}`", seconds(o.self_s), percent(o.share), f"{o.calls:g}"]
        rows.append(row + ([seconds(o.device_self_s)] if device else []))
    return "\n".join(parts + [_table(rows, head), ""])


def render_memory_md(memory: MemorySummary | None) -> str:
    """'## Memory per phase'; empty without a memory window."""
    if memory is None:
        return ""
    how = ("peak while the phase was innermost (the allocator's peak statistics reset at each boundary)"
           if memory.method == "peak" else "largest value read at the phase's boundaries")
    parts = ["## Memory per phase", "", f"Read at the phase boundaries of the view window: {how}.", ""]
    cuda = any(p.allocated_bytes is not None for p in memory.phases)
    if memory.phases:
        if cuda:
            rows = [[p.phase, mib(p.allocated_bytes), mib(p.reserved_bytes), str(p.readings)] for p in memory.phases]
            parts += [_table(rows, ["phase", "allocated", "reserved", "readings"]), ""]
        else:
            rows = [[p.phase, mib(p.rss_bytes), str(p.readings)] for p in memory.phases]
            parts += [_table(rows, ["phase", "RSS", "readings"]), ""]
    parts += _run_lines(memory)
    return "\n".join(parts)


def _run_lines(memory: MemorySummary) -> list[str]:
    lines: list[str] = []
    if memory.peak_allocated_bytes is not None:
        lines.append(f"- run peak: {mib(memory.peak_allocated_bytes)} allocated, "
                     f"{mib(memory.peak_reserved_bytes)} reserved")
    if memory.device_total_bytes is not None:
        lines.append(f"- device total {mib(memory.device_total_bytes)}, headroom at the peak "
                     f"{percent(memory.headroom_share)}")
    if memory.alloc_retries is not None:
        lines.append(f"- allocator retries: {memory.alloc_retries}, out-of-memory errors: {memory.ooms}")
    return lines + ([""] if lines else [])


def operators_to_dict(ops: Operators | None) -> dict[str, Any] | None:
    """summary.json's ``operators``."""
    if ops is None:
        return None
    return {"window_steps": list(ops.window_steps), "window_step_s": ops.window_step_s, "slowdown": ops.slowdown,
            "top": [{"name": o.name, "phase": o.phase, "self_s": o.self_s, "calls": o.calls, "share": o.share,
                     "device_self_s": o.device_self_s, "flops": o.flops} for o in ops.top]}


def memory_to_dict(memory: MemorySummary | None) -> dict[str, Any] | None:
    """summary.json's ``memory``."""
    if memory is None:
        return None
    return {"method": memory.method, "headroom_share": memory.headroom_share,
            "peak_allocated_bytes": memory.peak_allocated_bytes, "peak_reserved_bytes": memory.peak_reserved_bytes,
            "device_total_bytes": memory.device_total_bytes, "alloc_retries": memory.alloc_retries,
            "ooms": memory.ooms,
            "phases": [{"phase": p.phase, "allocated_bytes": p.allocated_bytes, "reserved_bytes": p.reserved_bytes,
                        "rss_bytes": p.rss_bytes, "readings": p.readings} for p in memory.phases]}
