"""Judge a plain run against a profiled run of the same row: the checks the matrix reports.

Each check is a name, a verdict and the evidence. The profiled side is read through throughput's own
session loader and summary, i.e. the numbers a user sees in the report.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat.attribution import attribute_all, describe, shares
from compat.execute import RunOutput
from compat.matrix import EVAL_LOOP, STEP_PHASES, Row

SHARE_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RankProfile:
    """What rank ``rank``'s session says, reduced to what the matrix shows."""

    rank: int
    end: str
    steps: int
    micro_steps_per_step: float | None
    phase_shares: dict[str, float]                 # steady-state steps, as in the report
    work: dict[str, dict[str, float]] = field(default_factory=dict)   # label -> phase -> share


def result_lines(stdout: str) -> dict[str, str]:
    """``key=value`` lines the row scripts print."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if re.match(r"^[a-z_0-9]+=", line))


def normalise_stderr(text: str, run_dir: Path) -> list[str]:
    """Stderr with what differs between any two runs replaced: paths of the run, log timestamps, pids."""
    text = text.replace(str(run_dir), "<run>")
    out = []
    for line in text.splitlines():
        line = re.sub(r"([WEIDF])\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ ", r"\1<time> <pid> ", line)
        line = re.sub(r"\d{4}-\d\d-\d\d_\d\d:\d\d:\d\d", "<time>", line)
        line = re.sub(r"\bpid:? \d+", "pid <pid>", line)
        out.append(line)
    return out


def traceback_excerpt(stderr: str, frames: int = 3) -> str:
    """The last traceback in ``stderr`` (rank prefixes removed): its last frames and the exception."""
    lines = [re.sub(r"^\[rank\d+\]: ", "", line) for line in stderr.splitlines()]
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return "\n".join(lines[-5:])
    # With several ranks each prints its traceback before torchrun prints its own: the first is the cause.
    block = lines[starts[0] + 1:]
    end = next((i for i, line in enumerate(block) if line and not line.startswith(" ")), len(block))
    where = [re.sub(r'"[^"]*site-packages/', '"', line.strip()) for line in block[:end] if line.startswith("  File ")]
    exc = block[end] if end < len(block) else ""
    where = where[-frames:]
    return "\n".join(where + [exc[:600]])


def compare_runs(plain: RunOutput, profiled: RunOutput, run_dirs: tuple[Path, Path], ranks: int = 1) -> list[Check]:
    """Exit status, stdout (every digit of the result lines), and stderr (normalised; with several
    ranks as a multiset of lines, since the ranks' lines interleave differently in any two runs)."""
    checks = [Check(name="exit status", ok=plain.returncode == profiled.returncode,
                    detail=f"plain {plain.returncode}, profiled {profiled.returncode}")]
    a, b = result_lines(plain.stdout), result_lines(profiled.stdout)
    loss_ok = "final_loss" in a and a.get("final_loss") == b.get("final_loss")
    checks.append(Check(name="final loss", ok=loss_ok,
                        detail=f"plain {a.get('final_loss')}, profiled {b.get('final_loss')}"))
    checks.append(Check(name="stdout", ok=plain.stdout == profiled.stdout, detail=_diff(
        plain.stdout.splitlines(), profiled.stdout.splitlines())))
    ea, eb = normalise_stderr(plain.stderr, run_dirs[0]), normalise_stderr(profiled.stderr, run_dirs[1])
    if ranks > 1:
        ea, eb = sorted(ea), sorted(eb)
    checks.append(Check(name="stderr", ok=ea == eb, detail=_diff(ea, eb)))
    return checks


def _diff(a: list[str], b: list[str], limit: int = 14) -> str:
    if a == b:
        return ""
    lines = [line for line in difflib.unified_diff(a, b, "plain", "profiled", n=0, lineterm="")][2:]
    more = f"\n... {len(lines) - limit} more diff lines" if len(lines) > limit else ""
    return "\n".join(line[:300] for line in lines[:limit]) + more


def profile_of(path: Path, rank: int, marks: list[dict[str, Any]]) -> RankProfile:
    """Read one rank's session through throughput's loader and summary."""
    from throughput.analysis.summary import summarize
    from throughput.session.io import load_session
    session = load_session(path)
    summary = summarize(session)
    offset = _time_offset(session)
    work: dict[str, dict[str, float]] = {}
    for label in sorted({m["label"] for m in marks}):
        intervals = [(m["start_s"] - offset, m["end_s"] - offset) for m in marks if m["label"] == label]
        work[label] = shares(attribute_all(session.spans, intervals))
    return RankProfile(rank=rank, end=summary.end, steps=summary.steps_total,
                       micro_steps_per_step=summary.micro_steps_per_step,
                       phase_shares={p.phase: p.share for p in summary.phases}, work=work)


def _time_offset(session: Any) -> float:
    """What to subtract from a ``perf_counter`` reading to get the session's time base: 0 when spans
    hold absolute readings, ``origin_s`` when they are relative to the start of capture."""
    first = session.steps[0].start_s if session.steps else (session.spans[0].start_s if session.spans else 0.0)
    return 0.0 if first >= session.info.origin_s else session.info.origin_s


def profile_checks(row: Row, plain: RunOutput, profiled: RunOutput, ranks: list[RankProfile]) -> list[Check]:
    """Sessions complete on every rank, steps equal to the updates, sane phases, work where it belongs."""
    checks = [Check(name="sessions", ok=len(ranks) == row.ranks and all(r.end == "completed" for r in ranks),
                    detail=f"{len(ranks)} of {row.ranks} rank session(s); ended "
                           + ", ".join(r.end for r in ranks) if ranks else "no session written")]
    if row.ranks > 1:
        checks.append(Check(name="merged report", ok=profiled.merged is not None,
                            detail="" if profiled.merged else "no ranks.json"))
    updates = result_lines(plain.stdout).get("updates")
    steps = [r.steps for r in ranks]
    checks.append(Check(name="steps = updates", ok=bool(ranks) and updates is not None
                        and all(str(s) == updates for s in steps),
                        detail=f"profile steps per rank {steps}, optimizer updates {updates}"))
    micro = [r.micro_steps_per_step for r in ranks]
    checks.append(Check(name="micro-steps per step", ok=bool(ranks) and all(
        m is not None and abs(m - row.micro_steps) < 1e-9 for m in micro),
        detail=f"profile {micro} per rank (steady state), forward/backward passes per update {row.micro_steps}"))
    for r in ranks:
        missing = [p for p in row.phases if r.phase_shares.get(p, 0.0) <= 0.0]
        total = math.fsum(r.phase_shares.values())
        checks.append(Check(name=f"phases (rank {r.rank})", ok=not missing and abs(total - 1) < SHARE_SUM_TOLERANCE,
                            detail=(f"missing {missing}; " if missing else "") + f"shares sum to {total:.9f}"))
    if ranks:
        for label, expected in row.work.items():
            if expected is not None:
                checks.append(_work_check(label, expected, ranks[0].work.get(label, {})))
    return checks


def _work_check(label: str, expected: str, got: dict[str, float]) -> Check:
    """``matrix.SAVE``: checkpoint holds the largest share; ``matrix.EVAL_LOOP``: eval has time and
    no training phase has any."""
    if not got:
        return Check(name=f"'{label}' in {expected}", ok=False, detail=f"no '{label}' interval recorded")
    if expected == EVAL_LOOP:
        training = [p for p in STEP_PHASES if got.get(p, 0.0) > 0.0]
        return Check(name=f"'{label}' in {expected}", ok=got.get(expected, 0.0) > 0.0 and not training,
                     detail=describe(got) + (f" (training phases inside: {training})" if training else ""))
    return Check(name=f"'{label}' in {expected}", ok=next(iter(got)) == expected, detail=describe(got))


def note_differences(plain: RunOutput, profiled: RunOutput) -> list[str]:
    """The notes (``compat/rows/_common.py``: compared, not judged) that differ, rank 0."""
    a, b = plain.notes.get(0, {}), profiled.notes.get(0, {})
    return [f"{key}: plain {a.get(key)!r}, profiled {b.get(key)!r}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)]


def to_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
