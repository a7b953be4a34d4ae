"""Write the matrix as ``compat.md`` (table, then every failure with its evidence) and ``compat.json``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compat.attribution import describe
from compat.causes import explain
from compat.checks import result_lines, to_json
from throughput.machine import cpu_model_name

if TYPE_CHECKING:
    from compat.run import RowResult

STEP_PHASE_ORDER = ("data", "h2d", "forward", "backward", "optimizer", "eval", "checkpoint", "other")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _phases(shares: dict[str, float]) -> str:
    order = sorted(shares, key=lambda p: STEP_PHASE_ORDER.index(p) if p in STEP_PHASE_ORDER else 6.5)
    return ", ".join(f"{p} {100 * shares[p]:.0f}%" for p in order if shares[p] >= 0.005) or "-"


def _work(result: "RowResult") -> str:
    if not result.profiles:
        return "-"
    work = result.profiles[0].work
    return "; ".join(f"{label}: {describe(work[label])}" for label in result.row.work if label in work) or "-"


def _row_line(result: "RowResult") -> str:
    steps = ", ".join(str(p.steps) for p in result.profiles) or "-"
    updates = result_lines(result.plain[0].stdout).get("updates", "?")
    loss = next((c for c in result.checks if c.name == "final loss"), None)
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items() if k != "torch") or "torch only"
    plain_step = result.overhead.get("plain_step_s")
    overhead = (f"{_ratio(result.overhead.get('step'))} / {_ratio(result.overhead.get('process'))}"
                + (f" ({1e3 * plain_step:.1f} ms)" if plain_step else ""))
    phases = _phases(result.profiles[0].phase_shares) if result.profiles else "-"
    return (f"| {result.row.name} | {versions} | **{result.status}** | {steps} / {updates} | "
            f"{'yes' if loss and loss.ok else 'no'} | {phases} | {_work(result)} | {overhead} |")


def render(results: list["RowResult"], meta: dict[str, Any]) -> str:
    torch_version = results[0].versions.get("torch", "?") if results else "?"
    passed = sum(r.status == "pass" for r in results)
    known = sum(r.status == "known failure" for r in results)
    lines = [
        "# Compatibility matrix: real frameworks, plain vs `throughput profile`", "",
        f"{passed} of {len(results)} rows pass" + (f", {known} known failure(s) (a capture bug filed with its "
        "xfail test; `make compat` fails if such a row starts passing)" if known else "")
        + f". Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{cpu_model_name()} ({os.cpu_count()} cores), torch {torch_version}, load average {meta['loadavg_before']} before "
        f"and {meta['loadavg_after']} after; {meta['repeat']} plain/profiled pair(s) per row, interleaved; "
        f"{meta['total_s']:.0f} s in all. Produced by `make compat` (`python -m compat.run`).", "",
        "Each row is a small real training script in `compat/rows/` (generated data, random init, fixed seeds), "
        "run as `python script.py` (torchrun for 2 ranks) and as `throughput profile --quiet script.py` "
        "(`--nproc-per-node 2`). A row passes when the exit status, stdout (updates, final loss and a digest "
        "of the trained weights, every digit) and stderr (paths, pids and log timestamps normalised) are the "
        "same; every rank's session is complete; its step count equals the optimizer updates the script "
        "counted; the expected phases have time and the shares sum to 1; and the framework's own work that "
        "belongs in a phase landed there.", "",
        "- **steps**: profile steps per rank / optimizer updates counted by the script (a step post-hook on the "
        "torch optimizer).",
        "- **phases**: rank 0's steady-state shares, as in the report.",
        "- **framework work**: where the profile put the time of work the script timed around the framework's "
        "own calls (saves, evaluation loops, the compiling first call), by innermost phase; `other` is time "
        "no phase covered. Save calls (`torch.save`, safetensors `save_file`, `dcp.save`) pass when "
        "`checkpoint` holds the largest share; evaluation loops when `eval` has time and no training phase "
        "has any (the loop's bookkeeping is `other`); whole save routines and compiling first calls are "
        "reported, not judged.",
        "- **overhead**: profiled / plain: the median time between optimizer updates after the first two (timed "
        "by the script's own hook; the plain run's median in brackets) / the whole process's wall time "
        "(start-up and report included); medians over the pairs. Steps of a few ms on a shared machine: noisy.",
        "",
        "| row | version | result | steps | loss equal | phases | framework work landed in | overhead step / process |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row_line(r) for r in results]
    lines += ["", "## What each row exercises", ""]
    lines += [f"- **{r.row.name}** (`{r.row.key}`): {r.row.exercises}" for r in results]
    noted = [r for r in results if r.notes]
    if noted:
        lines += ["", "## Differences noted, not judged", ""]
        for r in noted:
            lines += [f"- **{r.row.name}**:"] + [f"  - {n[:1500]}" for n in r.notes]
    failures = [r for r in results if not r.ok]
    if failures:
        lines += ["", "## Failures", ""]
        for r in failures:
            lines += _failure(r)
    return "\n".join(lines) + "\n"


def _failure(result: "RowResult") -> list[str]:
    out = [f"### {result.row.name} (`{result.row.key}`)", ""]
    if result.row.known_failure:
        out += [f"Known failure: {result.row.known_failure}.", ""]
    failed = [c for c in result.checks if not c.ok]
    for c in failed:
        out.append(f"- **{c.name}**")
        if c.detail:
            out += ["", "  ```", *("  " + line for line in c.detail.splitlines()), "  ```", ""]
    if result.cause:
        out += ["- **traceback** (first failing process):", "", "  ```",
                *("  " + line for line in result.cause.splitlines()), "  ```", ""]
    evidence = "\n".join([result.cause, *result.notes, *(f"{c.name}\n{c.detail}" for c in failed)])
    why = explain(result.row.key, evidence)
    return out + ([why, ""] if why else [])


def write_report(results: list["RowResult"], meta: dict[str, Any], report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "compat.md"
    path.write_text(render(results, meta))
    data = {"meta": meta, "rows": [{
        "key": r.row.key, "name": r.row.name, "versions": r.versions, "ok": r.ok, "status": r.status, "checks": to_json(r.checks),
        "steps": [p.steps for p in r.profiles], "phase_shares": [p.phase_shares for p in r.profiles],
        "work": [p.work for p in r.profiles], "overhead": r.overhead, "cause": r.cause, "notes": r.notes,
        "wall_s": {"plain": [o.wall_s for o in r.plain], "profiled": [o.wall_s for o in r.profiled]},
    } for r in results]}
    (report_dir / "compat.json").write_text(json.dumps(data, indent=2) + "\n")
    return path
