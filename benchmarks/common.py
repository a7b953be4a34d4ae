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


def cpu_kind(flags: str) -> str:
    """The CPU kind that decides how fast torch and Python run here, from ``cpu_flags()``: the machines
    these benchmarks run on are either AVX2-only or have AMX / AVX512-BF16 (bf16 autocast 2-5x faster)."""
    names = set(flags.split())
    if "amx_bf16" in names or "amx_tile" in names:
        return "AMX + AVX512-BF16" if "avx512_bf16" in names else "AMX"
    if "avx512_bf16" in names:
        return "AVX512-BF16"
    if "avx512f" in names:
        return "AVX512"
    return "AVX2 only" if "avx2" in names else flags


def write_report_by_cpu_kind(name: str, markdown: str, data: Mapping[str, Any]) -> Path:
    """Like ``write_report``, but the report keeps the latest run of each CPU kind (and of each size,
    quick or full) side by side: a run replaces only its own kind's section. Targets that must hold on
    every machine kind are read from one file. ``data`` must hold ``machine`` (``machine()``) and
    ``quick``. An earlier single-run report is kept as its own kind's section."""
    path = REPORT_DIR / f"{name}.json"
    sections = _sections(path, REPORT_DIR / f"{name}.md")
    sections[_section_key(data)] = {"markdown": markdown, "data": dict(data)}
    ordered = dict(sorted(sections.items()))
    title, _ = _split_title(markdown)
    parts = [title, "", f"The latest run on each CPU kind ({len(ordered)}: {', '.join(ordered)}); each "
             "section names its machine and date. Ratios compare runs of the same machine only.", ""]
    for key, section in ordered.items():
        parts += [f"## {key}", "", _split_title(section["markdown"])[1].strip("\n"), ""]
    return write_report(name, "\n".join(parts), {"by_cpu_kind": ordered})


def _section_key(data: Mapping[str, Any]) -> str:
    return f"{cpu_kind(data['machine']['cpu_flags'])}, {'quick' if data.get('quick') else 'full'} run"


def _sections(json_path: Path, md_path: Path) -> dict[str, dict[str, Any]]:
    """The sections already written: the per-kind format, or an earlier single run (its own section)."""
    try:
        old = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return {}
    if "by_cpu_kind" in old:
        return dict(old["by_cpu_kind"])
    if "machine" not in old or not md_path.exists():
        return {}
    return {_section_key(old): {"markdown": md_path.read_text(), "data": old}}


def _split_title(markdown: str) -> tuple[str, str]:
    """(the first ``# `` line, the rest)."""
    first, _, rest = markdown.partition("\n")
    return (first, rest) if first.startswith("# ") else ("# Benchmark", markdown)


def main(run: Callable[[bool], Any], doc: str | None) -> None:
    """``python -m benchmarks.<name> [--quick]``: the command line every benchmark module shares."""
    import argparse
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help="the smaller version CI runs")
    run(parser.parse_args().quick)
