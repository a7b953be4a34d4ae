"""Run every benchmark (``--quick`` for the CI-sized suite) and write reports/benchmarks/README.md."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from typing import Any

from benchmarks.common import REPORT_DIR, machine

# Each module has run(quick: bool) -> dict and writes reports/benchmarks/<name>.md/.json.
BENCHMARKS = ("overhead", "zerocode_overhead", "telemetry_overhead", "scale", "ops_window", "packing", "train_loop",
              "advisor", "advice_apply", "demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the smaller suite that CI runs")
    parser.add_argument("--only", nargs="*", default=None, help="run only these benchmarks")
    args = parser.parse_args(argv)
    names = [n for n in BENCHMARKS if args.only is None or n in args.only]
    results: dict[str, Any] = {}
    failed = []
    for name in names:
        t0 = time.perf_counter()
        print(f"== benchmark {name} ({'quick' if args.quick else 'full'})", flush=True)
        try:
            results[name] = importlib.import_module(f"benchmarks.{name}").run(args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"== {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    index = ["# Benchmarks", "", f"Latest run: {machine()}, {'quick' if args.quick else 'full'} suite "
             f"({', '.join(names)}). Each report names the machine and date it was measured on.", ""]
    present = sorted(p.stem for p in REPORT_DIR.glob("*.md") if p.stem != "README")
    index += [f"- [{n}]({n}.md)" + (" (FAILED to run this time)" if n in failed else "") for n in present]
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / "README.md").write_text("\n".join(index) + "\n")
    (REPORT_DIR / "latest.json").write_text(json.dumps({"machine": machine(), "quick": args.quick,
                                                         "failed": failed}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
