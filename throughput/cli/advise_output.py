"""What ``throughput advise`` prints and writes: ranked recommendations (text or ``--format json``) and the plan.

``--format json`` prints ``{"recommendations": [...], "plan": {...}, "notes": [...]}``; each
recommendation has ``id``, ``title``, ``expected_gain``, ``gain_noise``, ``confidence``, ``measured``,
``apply`` (the argv that applies it, or null), ``code_change`` (or null), ``changes_training`` (or null),
``settings`` and ``evidence``. No two recommendations share an id or the same settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Mapping, Sequence

from throughput.advisor.apply import TargetRef, apply_argv
from throughput.advisor.candidates import plan_may_carry, plan_settings
from throughput.advisor.confirm import Candidate, Confirmation
from throughput.advisor.plan import advice_to_dict, build_plan, save_plan
from throughput.finding import Finding, rank


def unique(findings: Sequence[Finding]) -> list[Finding]:
    """Ranked, one per id and per settings (the better-ranked one wins)."""
    seen_ids: set[str] = set()
    seen_settings: set[tuple[tuple[str, Any], ...]] = set()
    out = []
    for f in rank(findings):
        key = tuple(sorted(f.settings.items()))
        if f.rule_id in seen_ids or (key and key in seen_settings):
            continue
        seen_ids.add(f.rule_id)
        seen_settings.add(key)
        out.append(f)
    return out


def plan_gain(conf: Confirmation | None, cands: Sequence[Candidate], findings: Sequence[Finding]) -> dict[str, Any]:
    """The whole plan's measured gain, when the rounds measured exactly the settings the plan ends up
    with (every candidate that keeps the training as it is was worth it), else ``measured: false``."""
    kept = {k: v for f in findings if f.measured and plan_may_carry(f.settings, f.changes_training)
            for k, v in f.settings.items()}
    if conf is not None and conf.plan is not None and conf.plan.gain is not None and kept == plan_settings(list(cands)):
        return {"measured": True, "expected_gain": conf.plan.gain, "gain_noise": conf.plan.noise}
    single = [f for f in findings if f.measured and plan_may_carry(f.settings, f.changes_training)]
    if len(single) == 1 and single[0].settings == kept:
        return {"measured": True, "expected_gain": single[0].expected_gain, "gain_noise": single[0].gain_noise}
    return {"measured": False}


def emit(args: argparse.Namespace, findings: Sequence[Finding], target: TargetRef | None, header: Sequence[str],
         notes: Sequence[str], gain: Mapping[str, Any] | None = None, fingerprint: str | None = None,
         keep_off: Sequence[str] = (), measurement: Mapping[str, Any] | None = None) -> int:
    """Print the advice (text or JSON) and write the plan when asked. ``measurement``: how the measured
    gains were measured (rounds, steps per run), for JSON readers. Returns the exit status (0)."""
    from throughput.report.advice import render_advice
    recs = unique(findings)
    plan = build_plan(recs, model_fingerprint=fingerprint, target=target, keep_off=keep_off, notes=notes)
    info = dict(gain or {})
    if target is not None and plan.settings:
        info["apply"] = apply_argv(plan.settings, target, "plan")
    data = advice_to_dict(plan, recs, target, info)
    notes = list(dict.fromkeys(n for n in notes if n))
    if getattr(args, "format", "text") == "json":
        print(json.dumps({**data, "header": list(header), "notes": notes, "measurement": dict(measurement or {})},
                         indent=2))
    else:
        print(render_advice(data, header, notes), end="")
    if args.plan_out is not None:
        save_plan(plan, args.plan_out)
        print(f"plan written to {args.plan_out}", file=sys.stderr)
    return 0
