"""Shared benchmark plumbing: interleaved A/B timing, medians, and writing reports/benchmarks/<name>."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from throughput.hardware import cpu_model_name

REPORT_DIR = Path(__file__).resolve().parent.parent / "reports" / "benchmarks"


def machine() -> dict[str, Any]:
    import os
    return {"cpu": cpu_model_name(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
            "python": platform.python_version(), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def cpu_flags() -> str:
    """The vector-unit flags that change how fast this CPU runs torch and Python (avx2, avx512*, amx*),
    from /proc/cpuinfo; "unknown" elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((x for x in f if x.startswith("flags")), "")
    except OSError:
        return "unknown"
    flags = sorted(f for f in line.split(":", 1)[-1].split() if f in ("avx2", "avx512f", "avx512_bf16",
                                                                      "avx512_vnni", "amx_bf16", "amx_tile"))
    return " ".join(flags) or "no avx2"


def interleaved(variants: Mapping[str, Callable[[int], list[float]]], rounds: int, steps_per_block: int
                ) -> dict[str, list[float]]:
    """Run each variant's block of steps in turn, round after round (ABCABC...), so slow drifts of a
    shared machine hit all variants alike. Each callable runs ``steps_per_block`` steps and returns
    their durations in seconds."""
    out: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        names = list(variants) if r % 2 == 0 else list(reversed(variants))  # alternate order too
        for name in names:
            out[name].extend(variants[name](steps_per_block))
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_report(name: str, markdown: str, data: Mapping[str, Any]) -> Path:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / f"{name}.md").write_text(markdown)
    (REPORT_DIR / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    return REPORT_DIR / f"{name}.md"


def main(run: Callable[[bool], Any], doc: str | None) -> None:
    """``python -m benchmarks.<name> [--quick]``: the command line every benchmark module shares."""
    import argparse
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help="the smaller version CI runs")
    run(parser.parse_args().quick)
