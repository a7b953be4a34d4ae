"""Does the advice hold? Every `apply` command runs, and each measured gain is reproduced by an A/B run of
the applied command against the unchanged one.

For two example scripts and one recipe: ``throughput advise --format json`` (its own probes, its own
confirmation rounds), then, independently of the advisor's runs:

1. every ``apply`` argv (each recommendation's and the plan's) runs with ``--max-steps`` and must exit 0;
2. every ``measured: true`` recommendation: ``AB_ROUNDS`` interleaved rounds (ab, ba, ab, ...) of the
   unchanged command and the applied one, each run measuring the same number of steady steps the
   advisor's confirmation used; the reproduced gain is the median of the per-round ratios, and it must
   lie within the advisor's stated noise band of its expected gain;
3. the advisor's baseline against a normal, 3x longer run of the unchanged command: the probes must be
   long enough that the two agree within the stated band;
4. the unsharded stream: no recommendation may add loader workers (they would duplicate the data).

Every child runs with one intra-op thread (``OMP_NUM_THREADS=1``): the benchmark machine is shared, and
with one thread a busy neighbour slows a run instead of stalling a thread barrier. Rates are samples over
the seconds of the steady steps (``throughput profile``'s session, or ``throughput train``'s metrics with
evaluation and checkpoint time excluded).

``python -m benchmarks.advice_apply [--quick]`` writes reports/benchmarks/advice_apply.md and .json.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import machine, main, write_report
from throughput.advisor.apply import with_options
from throughput.advisor.script import parse_probe
from throughput.advisor.train_target import measure_records
from throughput.advisor.trials import ProbeResult
from throughput.loop.metrics import read_metrics

REPO = Path(__file__).resolve().parent.parent
AB_ROUNDS = {False: 5, True: 3}
ADVISE = {False: ["--probe-steps", "3", "--confirm-rounds", "3", "--confirm-window", "2"],
          True: ["--probe-steps", "2", "--confirm-rounds", "3", "--confirm-window", "1"]}
WARMUP = 5            # leading steps left out of every measured run (loader workers prefetch 2 x 2 batches)
TARGETS = (("script", "examples/zerocode/slow_loader.py", ("--steps", "100000")),
           ("script", "examples/zerocode/unsharded_stream.py", ("--steps", "100000")),
           ("recipe", "examples/recipes/tiny_cnn.py", ()))


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))


def advise(kind: str, path: str, args: tuple[str, ...], quick: bool) -> tuple[dict[str, Any], float]:
    target = ["--recipe", path] if kind == "recipe" else [path, *args]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "throughput", "advise", "--format", "json", *ADVISE[quick], *target],
                         capture_output=True, text=True, cwd=REPO, env=_env(), timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"advise {path} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout), time.perf_counter() - t0


def baseline_argv(kind: str, path: str, args: tuple[str, ...]) -> list[str]:
    """The unchanged command: what every apply argv is, minus its --set pairs."""
    return ["throughput", "profile", path, *args] if kind == "script" else ["throughput", "train", path]


def run_measured(argv: list[str], steps: int) -> tuple[int, ProbeResult]:
    """Run a ``throughput profile|train`` argv for WARMUP + ``steps`` steps; (exit status, rates)."""
    tmp = Path(tempfile.mkdtemp(prefix="advice-apply-"))
    try:
        opts = ["--max-steps", str(steps + WARMUP), "--out", str(tmp / "out"), "--quiet"]
        if argv[1] == "profile":
            opts += ["--warmup-steps", str(WARMUP)]
        # argv[0] is "throughput": run as python -m throughput, with this interpreter
        done = subprocess.run([sys.executable, "-m", *with_options(argv, opts)], capture_output=True, text=True,
                              cwd=REPO, env=_env(), timeout=1800)
        if argv[1] == "profile":
            result, _ = parse_probe(tmp / "out" / "session.json", done.stdout + done.stderr, 0, False, 1800)
        else:
            records = [r for r in read_metrics(tmp / "out" / "metrics.jsonl") if r.get("kind") == "train"]
            result = measure_records(records, WARMUP) if records else ProbeResult(error="no steps")
        return done.returncode, result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ab(base: list[str], applied: list[str], steps: int, rounds: int, metric: str) -> dict[str, Any]:
    """Interleaved A/B (ab, ba, ...): per-round ratios applied / unchanged, their median and spread."""
    rates: dict[str, list[float]] = {"base": [], "applied": []}
    for i in range(rounds):
        for name, argv in (("base", base), ("applied", applied))[:: 1 if i % 2 == 0 else -1]:
            _, r = run_measured(argv, steps)
            rates[name].append((r.tokens_per_s if metric == "tokens" else r.samples_per_s) or 0.0)
    ratios = [a / b for a, b in zip(rates["applied"], rates["base"]) if a and b]
    return {"rates": rates, "ratios": ratios, "gain": statistics.median(ratios) - 1 if ratios else None,
            "spread": (max(ratios) - min(ratios)) if ratios else None}


def run_target(kind: str, path: str, args: tuple[str, ...], quick: bool) -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    advice, advise_s = advise(kind, path, args, quick)
    steps = int(advice["measurement"].get("confirm_steps") or 20)
    base = baseline_argv(kind, path, args)
    recs = advice["recommendations"]
    commands = [(r["id"], r["apply"]) for r in recs if r["apply"]]
    if advice["plan"].get("apply"):
        commands.append(("plan", advice["plan"]["apply"]))
    applied = [{"id": rid, "argv": argv, "exit": run_measured(argv, 2)[0]} for rid, argv in commands]
    checks = []
    for r in recs:
        if not (r["measured"] and r["apply"]):
            continue
        metric = "tokens" if "packing" in r["settings"] else "samples"
        res = ab(base, r["apply"], steps, AB_ROUNDS[quick], metric)
        band = r["gain_noise"]
        ok = res["gain"] is not None and band is not None and abs(res["gain"] - r["expected_gain"]) <= band
        checks.append({"id": r["id"], "expected_gain": r["expected_gain"], "noise": band, **res, "reproduced": ok})
    normal = run_measured(base, 3 * steps)[1].samples_per_s
    probe_base = [statistics.median(c["rates"]["base"]) for c in checks]
    return {"kind": kind, "path": path, "advise_s": advise_s, "confirm_steps": steps, "advice": advice,
            "applied": applied, "checks": checks, "normal_run_samples_per_s": normal,
            "ab_baseline_samples_per_s": probe_base[0] if probe_base else None,
            "adds_workers": any("num_workers" in r["settings"] for r in recs),
            "load_average_1min": [load0, os.getloadavg()[0]]}


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# Advice that holds: apply commands and reproduced gains", "",
             f"Mode: {'quick' if result['quick'] else 'full'}; {m['cpu']} ({m['cores']} cores, shared with other "
             f"jobs), {m['date_utc']} UTC; total {result['total_s']:.0f} s. Every child runs with one intra-op "
             "thread. Load average (1 min) is given per target: the machine is shared, so the noise bands are "
             "wide when it is busy.", "",
             "| target | recommendations | apply commands (exit 0 / all) "
             "| measured gains reproduced (within the stated noise) | normal run / A/B baseline | load avg |",
             "|---|---|---|---|---|---|"]
    for t in result["targets"]:
        ok = sum(a["exit"] == 0 for a in t["applied"])
        rep = sum(c["reproduced"] for c in t["checks"])
        normal = t["normal_run_samples_per_s"]
        ratio = f"{normal / t['ab_baseline_samples_per_s']:.3f}" if normal and t["ab_baseline_samples_per_s"] else "n/a"
        la = t["load_average_1min"]
        lines.append(f"| `{t['path']}` | {len(t['advice']['recommendations'])} | {ok} / {len(t['applied'])} | "
                     f"{rep} / {len(t['checks'])} | {ratio} | {la[0]:.1f} -> {la[1]:.1f} |")
    lines.append("")
    for t in result["targets"]:
        lines += [f"## `{t['path']}` ({t['kind']})", "", f"- advise took {t['advise_s']:.0f} s; confirmation runs "
                  f"measured {t['confirm_steps']} steady steps each"]
        for r in t["advice"]["recommendations"]:
            gain = "?" if r["expected_gain"] is None else f"{r['expected_gain']:+.0%}" + (
                f" +/- {r['gain_noise']:.0%}" if r["gain_noise"] is not None else "")
            lines.append(f"- `{r['id']}` {r['title']}: {gain}, {'measured' if r['measured'] else 'not measured'}"
                         + (f"; changes training: {r['changes_training']}" if r["changes_training"] else ""))
        lines += [f"- note: {n}" for n in t["advice"]["notes"]]
        for a in t["applied"]:
            lines.append(f"- apply `{' '.join(a['argv'])}` -> exit {a['exit']}")
        for c in t["checks"]:
            lines.append(f"- A/B `{c['id']}`: expected {c['expected_gain']:+.1%} +/- {c['noise']:.1%}; reproduced "
                         f"{(c['gain'] or 0):+.1%} (per-round ratios {', '.join(f'{x:.3f}' for x in c['ratios'])}) -> "
                         f"{'within the band' if c['reproduced'] else 'OUTSIDE the band'}")
        if t["path"].endswith("unsharded_stream.py"):
            lines.append(f"- proposes loader workers: {'YES (wrong)' if t['adds_workers'] else 'no'}")
        lines.append("")
    return "\n".join(lines)


def run(quick: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "advice_apply", "quick": quick, "machine": machine(),
                              "targets": [run_target(*t, quick) for t in TARGETS]}
    result["total_s"] = time.perf_counter() - t0
    write_report("advice_apply", render(result), result)
    return result


if __name__ == "__main__":
    main(lambda quick: print(render(run(quick))), __doc__)
