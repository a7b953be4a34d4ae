"""The tuned plan from the advisor's findings (torch-free). The plan class, its file format and its one
loader are the training loop's (``throughput.loop.plan``): the advisor writes what the loop reads.

Which findings enter the plan: those whose settings the target takes from outside (script knobs for a
script, loop knobs for a recipe), that do not change the training math or data (``changes_training``),
and, last, the configuration the search validated by running it. Everything left out is listed in the
plan's ``notes`` with the reason, never dropped silently.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from throughput.advisor.apply import TargetRef, recommendation
from throughput.advisor.candidates import plan_may_carry
from throughput.finding import Finding, Setting, rank
from throughput.knobs import Value
from throughput.loop.plan import Plan, load_plan, save_plan

__all__ = ["Plan", "advice_to_dict", "build_plan", "load_plan", "save_plan"]


def build_plan(findings: Sequence[Finding], measured: Mapping[str, Setting] | None = None,
               model_fingerprint: str | None = None, target: TargetRef | None = None,
               keep_off: Sequence[str] = (), notes: Sequence[str] = ()) -> Plan:
    """Merge the findings' settings (the highest-ranked finding wins a conflicting key), then the
    ``measured`` configuration (the search's result wins over its own steps). ``keep_off``: knobs the
    plan must not switch on (checkpointing a recipe turned off), noted instead."""
    settings: dict[str, Setting] = {}
    out_notes: list[str] = []
    for f in reversed(rank(findings)):          # lower ranks first, so the best finding writes last
        if not f.settings:
            continue
        why = _left_out(f, target, keep_off)
        if why:
            out_notes.append(f"not in the plan: {_describe(f.settings)} ({why})")
            continue
        settings.update(f.settings)
        out_notes += [f"{k}: {e}" for k in f.settings for e in f.evidence[:2]]
        if f.changes_training:
            out_notes.append(f"in the plan, and it changes training: {_describe(f.settings)}: {f.changes_training}")
    settings.update({k: v for k, v in (measured or {}).items() if target is None or target.takes(k)})
    clean: dict[str, Value] = {k: v for k, v in settings.items() if v is not None}
    return Plan(settings=clean, model_fingerprint=model_fingerprint, source="throughput advise",
                notes=tuple(dict.fromkeys([*out_notes, *notes])))


def _left_out(f: Finding, target: TargetRef | None, keep_off: Sequence[str]) -> str | None:
    if not plan_may_carry(f.settings, f.changes_training):
        return f"changes training: {f.changes_training}"
    if any(k in keep_off for k in f.settings):
        return "the recipe has it off; turn it on yourself if you want it"
    if target is not None and not all(target.takes(k) for k in f.settings):
        return "needs a code change"
    if f.expected_gain is not None and f.expected_gain <= 0:
        return "no measured gain"
    return None


def _describe(settings: Mapping[str, Setting]) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items())


def advice_to_dict(plan: Plan, findings: Sequence[Finding], target: TargetRef | None,
                   plan_gain: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Plain data for the renderers and ``--format json``: ranked recommendations (each with its argv
    or code change), the plan's settings and, when measured, the whole plan's own gain."""
    recs = [recommendation(f, target) for f in rank(findings)]
    return {"recommendations": recs, "plan": {"settings": dict(plan.settings), "notes": list(plan.notes),
                                              **(plan_gain or {})}}
