"""The markdown of ``reports/benchmarks/ops_window.md`` from ``benchmarks/ops_window.py``'s data. Only
formats: every figure is computed by ops_window.py / within_process.py."""

from __future__ import annotations

from typing import Any

TITLES = {"fixed": "glibc malloc thresholds fixed (the window's own effect)",
          "default": "default glibc malloc (what a user gets: the allocator's adaptation included)"}
MODE_ARGS = {"off": "--no-memory", "memory": "default", "ops": "--ops 5"}


def _s(d: dict[str, float]) -> str:
    return f"{d['median']:.3f} [{d['q1']:.3f}..{d['q3']:.3f}] ({d['low']:.3f}..{d['high']:.3f})"


def _vs(c: dict[str, Any] | None) -> str:
    if c is None:
        return "(control)"
    lo, hi = c["ci95"]
    return f"{c['ratio']:.3f} [{lo:.3f}..{hi:.3f}] **{c['verdict']}**"


def _floor(c: dict[str, Any], tol: float) -> str:
    lo, hi = c["ci95"]
    half = (hi - lo) / 2
    return f"+-{half * 100:.1f}%" + (" (above the 2% to show)" if half > tol else "")


def _table(name: str, t: dict[str, Any], tol: float) -> list[str]:
    modes, runs = t["modes"], t["runs"]
    lines = [f"## {TITLES[name]}", "", "| mode | processes | wall after/before: median [IQR] (range) | vs `off` "
             "[95% CI] | CPU after/before: median [IQR] (range) | vs `off` [95% CI] |", "|---|---|---|---|---|---|"]
    lines += [f"| `{m}` ({MODE_ARGS[m]}) | {len(runs[m])} | {_s(d['wall'])} | {_vs(d.get('vs_off_wall'))} | "
              f"{_s(d['cpu'])} | {_vs(d.get('vs_off_cpu'))} |" for m, d in modes.items()]
    lines.append("")
    for m, d in modes.items():
        if m != "off":
            lines.append(f"- `{m}` vs `off`: half-width of the 95% interval (the noise floor of this comparison "
                         f"with these processes): wall {_floor(d['vs_off_wall'], tol)}, CPU "
                         f"{_floor(d['vs_off_cpu'], tol)}.")
    lines += ["", "Per process (in run order), after/before ratio of wall (CPU), and the median step before the "
              "window (which shows how much processes differ from each other):", ""]
    for m, rs in runs.items():
        lines.append(f"- `{m}`: " + ", ".join(f"{r['wall_ratio']:.3f} ({r['cpu_ratio']:.3f}) @ {r['before_ms']:.1f} ms"
                                               for r in rs))
    ops = runs.get("ops", [])
    tops = [r["top_forward"] for r in ops]
    lines += ["", f"Top forward operator in each `--ops` run: {', '.join(sorted(set(tops)))} "
              f"({tops.count('aten::mm')}/{len(tops)} runs `aten::mm`). The window's own cost per `--ops` run, "
              "each over the median step before the window in the same process: recorded steps (median) / the "
              "profiler's warm-up step / the step that stops it; and the report's `slowdown` (mean window step "
              "over mean steady-state step):", ""]
    lines += [f"- window {r['window_steps'][0]}-{r['window_steps'][1]}: {r['window']:.2f}x / "
              f"{r['profiler_warmup']:.2f}x / {r['stop']:.2f}x; report {r['summary_slowdown']:.2f}x" for r in ops]
    return lines + [""]


def render(data: dict[str, Any]) -> str:
    tol, load = data["tolerance"], data["load"]
    b, w, a = data["before"], data["window"], data["after"]
    md = [f"# Operator window (`--ops`) cost outside the window ({'quick' if data['quick'] else 'full'})", "",
          f"Machine: {data['machine']}. Load average (1, 5, 15 min): {' -> '.join(load)} (start, after each "
          "table, end).", "",
          f"`benchmarks/_ops_workload.py --steps {data['steps']} --width {data['width']} --batch {data['batch']}` "
          f"(OMP_NUM_THREADS=1) under `throughput profile --no-telemetry --warmup-steps {data['warmup_steps']}`, "
          f"{data['rounds']} interleaved rounds (ABC CBA ...) of fresh processes per mode. In every process: the "
          f"median step of steps {b[0]}-{b[1]} (before the window) and of steps {a[0]}-{a[1]} (after it; under "
          f"`--ops` the profiler's warm-up step is {data['warmup_steps']}, it records steps {w[0]}-{w[1]} and "
          f"stops in step {w[1] + 1}), as wall time (steps.jsonl) and as the training thread's CPU time (timed "
          "in the workload). Figure: after/before per process, the median over processes, and that median "
          "over `off`'s (the same steps without any window), with a bootstrap 95% interval over processes. "
          f"Verdict against {tol:.0%}: **pass** when the whole interval is within 1 +- {tol}, **fail** when it "
          "is wholly outside, **inconclusive** when the noise is wider than the claim.", ""]
    for name, t in data["tables"].items():
        md += _table(name, t, tol)
    d = data["dispatch"]
    md += ["## Dispatch cost after the window (one process, CPU time)", "",
           "`benchmarks/_ops_dispatch.py`: `torch.add` on 8x8 tensors, CPU time per call after / before a "
           "torch.profiler window run as `--ops` runs it (`off`: no window), "
           f"{len(d['ratios']['off'])} processes per mode, median [IQR] (range):", "",
           f"- `off`: {_s(d['off'])}; runs: {', '.join(f'{x:.3f}' for x in d['ratios']['off'])}",
           f"- `ops`: {_s(d['ops'])}; runs: {', '.join(f'{x:.3f}' for x in d['ratios']['ops'])}",
           f"- `ops` vs `off`: {_vs(d['vs_off'])}", ""]
    return "\n".join(md)
