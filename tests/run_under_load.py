"""``make test-under-load``: the test suite N times in a row while a busy loop holds one CPU core.

    python tests/run_under_load.py [--runs 5] [--log reports/benchmarks/test_under_load.md] [-- pytest args]

Starts one process that spins on core 0 (pinned there when the OS allows), runs the suite (``pytest -q
-p no:cacheprovider --runslow`` unless other pytest arguments are given) ``--runs`` times, stops the
spinner, and prints one line per run: status, duration, passed/failed counts and the 1-minute load
average before and after. With ``--log`` the same table goes to a markdown file with the machine's CPU
and core count. Exits 1 if any run failed, so CI can run it as is.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from throughput.machine import cpu_model_name

REPO = Path(__file__).resolve().parent.parent
SPIN = "import os\ntry:\n    os.sched_setaffinity(0, {0})\nexcept (AttributeError, OSError):\n    pass\nwhile True:\n    pass\n"
DEFAULT_PYTEST = ["-q", "-p", "no:cacheprovider", "--runslow"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    index: int
    status: int
    duration_s: float
    summary: str          # pytest's last line, e.g. "640 passed, 3 skipped in 201.3s"
    load_before: float
    load_after: float


def load_1min() -> float:
    return os.getloadavg()[0]


def run_suite(index: int, pytest_args: list[str]) -> Run:
    before, t0 = load_1min(), time.perf_counter()
    # Its own process group, so that an interrupted run takes pytest's workers and their children with it.
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *pytest_args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        stdout, _ = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    duration = time.perf_counter() - t0
    tail = [line for line in stdout.strip().splitlines() if line.strip()]
    summary = re.sub(r"=+", "", tail[-1]).strip() if tail else "(no output)"
    if proc.returncode != 0:
        failed = [line for line in stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        sys.stdout.write("\n".join(failed[:20]) + ("\n" if failed else ""))
        # the whole output, for the failure's traceback: a failure under load may not come back alone
        kept = Path(tempfile.gettempdir()) / f"test-under-load-run{index}.txt"
        kept.write_text(stdout)
        sys.stdout.write(f"(pytest's output of run {index}: {kept})\n")
    return Run(index=index, status=proc.returncode, duration_s=duration, summary=summary, load_before=before,
               load_after=load_1min())


def line(run: Run) -> str:
    verdict = "green" if run.status == 0 else f"FAILED (exit {run.status})"
    return (f"run {run.index}: {verdict} in {run.duration_s:.0f} s ({run.duration_s / 60:.1f} min); {run.summary}; "
            f"load average {run.load_before:.2f} -> {run.load_after:.2f}")


def markdown(runs: list[Run], pytest_args: list[str], started: str) -> str:
    rows = [f"| {r.index} | {'green' if r.status == 0 else 'FAILED'} | {r.duration_s:.0f} s | {r.summary} | "
            f"{r.load_before:.2f} -> {r.load_after:.2f} |" for r in runs]
    return "\n".join([
        "# `make test-under-load`", "",
        f"{started}; {cpu_model_name()}, {os.cpu_count()} logical CPUs; one busy-loop process pinned to core 0 for the "
        f"whole time; `python -m pytest {' '.join(pytest_args)}` run {len(runs)} times in a row.", "",
        "| run | result | duration | pytest summary | 1-min load average (before -> after) |",
        "|---|---|---|---|---|", *rows, ""])


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="suite runs in a row (default 5)")
    parser.add_argument("--log", type=Path, default=None, help="also write the table to this markdown file")
    parser.add_argument("pytest_args", nargs="*", help="pytest arguments after `--` (default: the make test ones)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    pytest_args = args.pytest_args or DEFAULT_PYTEST
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    previous = signal.signal(signal.SIGTERM, _terminated)   # so that `finally` stops the spinner on SIGTERM
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    runs: list[Run] = []
    try:
        for i in range(1, args.runs + 1):
            runs.append(run_suite(i, pytest_args))
            print(line(runs[-1]), flush=True)
    finally:
        spinner.kill()
        spinner.wait()
        signal.signal(signal.SIGTERM, previous)
    if args.log is not None:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        args.log.write_text(markdown(runs, pytest_args, started))
        print(f"log: {args.log}")
    return 0 if all(r.status == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
