"""``python -m compat.run [--rows KEY ...] [--repeat N]``: the compatibility matrix.

Runs every row of ``compat/matrix.py`` plainly and under ``throughput profile`` (real subprocesses,
plain and profiled interleaved, the order alternating between repeats), checks each pair, and writes
``reports/benchmarks/compat.md`` and ``compat.json``. Exits 1 when a row fails, naming it. Run it in
the environment ``make compat`` builds (compat/.venv), which holds the frameworks.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat.checks import (Check, RankProfile, compare_runs, note_differences, profile_checks, profile_of,
                           traceback_excerpt)
from compat.execute import RunOutput, run_once
from compat.matrix import ROWS, Row

ROOT = Path(__file__).resolve().parent.parent
REPORT_DIR = ROOT / "reports" / "benchmarks"
WARMUP_UPDATES = 2   # as the profiler's default warm-up


@dataclass(frozen=True, slots=True, kw_only=True)
class RowResult:
    row: Row
    versions: dict[str, str]
    checks: list[Check]
    profiles: list[RankProfile]
    plain: list[RunOutput]
    profiled: list[RunOutput]
    cause: str = ""                       # traceback excerpt of a failed run
    notes: list[str] = field(default_factory=list)   # details that differ but are not judged
    overhead: dict[str, float | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def status(self) -> str:
        """pass; FAIL; known failure (a row marked ``known_failure`` that failed, as pytest's strict
        xfail); or FAIL (fixed?) when such a row passed: remove the mark."""
        if self.row.known_failure:
            return "FAIL (passes: remove known_failure)" if self.ok else "known failure"
        return "pass" if self.ok else "FAIL"

    @property
    def counts_as_failure(self) -> bool:
        return self.status.startswith("FAIL")


def versions(row: Row) -> dict[str, str]:
    out = {}
    for name in ("torch", *row.packages):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_row(row: Row, base: Path, repeat: int) -> RowResult:
    plain: list[RunOutput] = []
    profiled: list[RunOutput] = []
    for i in range(repeat):
        order = ("plain", "profiled") if i % 2 == 0 else ("profiled", "plain")
        for mode in order:
            out = run_once(row, mode, base / row.key / f"{i}-{mode}")
            (plain if mode == "plain" else profiled).append(out)
    dirs = (base / row.key / "0-plain", base / row.key / "0-profiled")
    checks = [Check(name="plain run", ok=plain[0].returncode == 0,
                    detail=f"exit {plain[0].returncode}" + ("" if plain[0].returncode == 0 else
                                                            ": the row itself is broken, not the profiler"))]
    checks += compare_runs(plain[0], profiled[0], dirs, row.ranks)
    checks += _repeat_checks(plain, profiled)
    profiles = [profile_of(path, r, profiled[0].marks.get(r, [])) for r, path in sorted(profiled[0].sessions.items())]
    checks += profile_checks(row, plain[0], profiled[0], profiles)
    failed = next((o for o in (profiled[0], plain[0]) if o.returncode != 0), None)
    return RowResult(row=row, versions=versions(row), checks=checks, profiles=profiles, plain=plain,
                     profiled=profiled, cause=traceback_excerpt(failed.stderr) if failed else "",
                     notes=note_differences(plain[0], profiled[0]),
                     overhead=_overhead(plain, profiled))


def _repeat_checks(plain: list[RunOutput], profiled: list[RunOutput]) -> list[Check]:
    if len(plain) < 2:
        return []
    outputs = {o.stdout for o in plain + profiled if o.returncode == 0}
    return [Check(name="repeats", ok=len(outputs) <= 1 and all(o.returncode == plain[0].returncode for o in plain),
                  detail=f"{len(plain)} plain and {len(profiled)} profiled runs, {len(outputs)} distinct outputs")]


def _overhead(plain: list[RunOutput], profiled: list[RunOutput]) -> dict[str, float | None]:
    """Profiled over plain, medians over the repeats (None where a run failed): ``step``, the median
    time between optimizer updates after the first ``WARMUP_UPDATES`` (rank 0, timed by the script's
    own hook, so one-time costs such as imports and compilation fall outside it); ``process``, the
    whole process's wall time (start-up and report included)."""
    def step_s(o: RunOutput) -> float | None:
        times = o.updates_s.get(0, [])[WARMUP_UPDATES:]
        gaps = [b - a for a, b in zip(times, times[1:])]
        return statistics.median(gaps) if gaps and o.returncode == 0 else None

    def ratio(a: list[float | None], b: list[float | None]) -> float | None:
        if not a or not b or any(v is None for v in a + b):
            return None
        return statistics.median(v for v in b if v is not None) / statistics.median(v for v in a if v is not None)

    return {"step": ratio([step_s(o) for o in plain], [step_s(o) for o in profiled]),
            "process": ratio([o.wall_s for o in plain], [o.wall_s for o in profiled]),
            "plain_step_s": _median_or_none([step_s(o) for o in plain])}


def _median_or_none(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else statistics.median(v for v in values if v is not None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="*", default=None, metavar="KEY",
                        help="run only these rows: " + ", ".join(r.key for r in ROWS))
    parser.add_argument("--repeat", type=int, default=1, help="plain/profiled pairs per row (overhead medians)")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "reports" / "compat",
                        help="where each run's folder, output and profile are kept")
    parser.add_argument("--report-dir", type=Path, default=REPORT_DIR)
    args = parser.parse_args(argv)
    unknown = set(args.rows or ()) - {r.key for r in ROWS}
    if unknown or args.repeat < 1:
        print(f"compat: unknown row(s) {sorted(unknown)}; choose from {[r.key for r in ROWS]}" if unknown
              else "compat: --repeat must be at least 1", file=sys.stderr)
        return 2
    from compat.render import write_report
    rows = [r for r in ROWS if args.rows is None or r.key in args.rows]
    base = args.runs_dir / time.strftime("%Y%m%d-%H%M%S")
    started = time.perf_counter()
    load_before = _loadavg()
    results = []
    for row in rows:
        t0 = time.perf_counter()
        print(f"== {row.key}: {row.name}", flush=True)
        result = run_row(row, base, args.repeat)
        results.append(result)
        _print_result(result, time.perf_counter() - t0)
    meta: dict[str, Any] = {"repeat": args.repeat, "runs_dir": str(base), "total_s": time.perf_counter() - started,
                            "loadavg_before": load_before, "loadavg_after": _loadavg()}
    path = write_report(results, meta, args.report_dir)
    failed = [r.row.key for r in results if r.counts_as_failure]
    known = [r.row.key for r in results if r.status == "known failure"]
    print(f"compat: {sum(r.status == 'pass' for r in results)} of {len(results)} rows passed"
          + (f", {len(known)} known failure(s) ({', '.join(known)})" if known else "")
          + f" in {meta['total_s']:.0f} s; report {path}", flush=True)
    if failed:
        print(f"compat: FAILED rows: {', '.join(failed)} (causes in {path})", file=sys.stderr)
        return 1
    return 0


def _print_result(result: RowResult, seconds: float) -> None:
    print(f"   {result.status} in {seconds:.1f} s", flush=True)
    for c in result.checks:
        if not c.ok:
            detail = c.detail.replace("\n", "\n        ")
            print(f"   - {c.name}: {detail}", flush=True)
    if result.cause:
        print("     cause: " + result.cause.replace("\n", "\n            "), flush=True)


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
