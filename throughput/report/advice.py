"""Render the advisor's recommendations (the plain dict of ``throughput.advisor.plan.advice_to_dict``):
formatting only. Takes plain data so that report/ stays independent of the advisor package."""

from __future__ import annotations

import shlex
from typing import Any, Mapping, Sequence

from tabulate import tabulate


def _gain(rec: Mapping[str, Any]) -> str:
    value, noise = rec.get("expected_gain"), rec.get("gain_noise")
    if value is None:
        return "?"
    return f"{value * 100:+.0f}%" + (f" +/- {noise * 100:.0f}%" if noise is not None else "")


def _how(rec: Mapping[str, Any]) -> str:
    return "measured" if rec.get("measured") else "estimated"


def render_advice(data: Mapping[str, Any], header: Sequence[str] = (), notes: Sequence[str] = ()) -> str:
    """Ranked recommendations with evidence, expected gain (and its noise), confidence, whether it was
    measured, what it changes in training, and how to apply it (the command, or the code change)."""
    lines = list(header)
    recs = data.get("recommendations", [])
    if not recs:
        lines.append("no recommendations: nothing measured crosses a rule's threshold")
    rows = [[i, r["title"], _gain(r), r["confidence"], _how(r)] for i, r in enumerate(recs, 1)]
    if rows:
        lines.append(tabulate(rows, headers=["#", "recommendation", "expected gain", "confidence", "how"],
                              tablefmt="simple"))
    for i, r in enumerate(recs, 1):
        lines.append(f"{i}. {r['title']}  [{r['id']}]")
        lines += [f"   evidence: {e}" for e in r.get("evidence", [])]
        if r.get("changes_training"):
            lines.append(f"   CHANGES TRAINING: {r['changes_training']}")
        if r.get("apply"):
            lines.append(f"   apply:    {shlex.join(r['apply'])}")
        if r.get("code_change"):
            code = r["code_change"].splitlines()
            lines.append(f"   in code:  {code[0]}")
            lines += [f"             {c}" for c in code[1:]]
    plan = data.get("plan", {})
    if plan.get("settings"):
        gain = _gain(plan) if plan.get("measured") else "not measured as a whole"
        lines.append("tuned plan: " + " ".join(f"{k}={v}" for k, v in sorted(plan["settings"].items()))
                     + f" ({gain})")
        if plan.get("apply"):
            lines.append(f"   apply:    {shlex.join(plan['apply'])}")
    lines += [f"note: {n}" for n in plan.get("notes", []) if n.startswith("not in the plan")]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines) + "\n"
