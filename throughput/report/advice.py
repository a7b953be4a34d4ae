"""Render the advisor's plan (the plain dict of ``throughput.advisor.plan.plan_to_dict``): formatting only.

Takes plain data so that report/ stays independent of the advisor package.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tabulate import tabulate


def _gain(value: float | None) -> str:
    return "?" if value is None else f"{value * 100:+.0f}%"


def render_advice(plan: Mapping[str, Any], header: Sequence[str] = (), notes: Sequence[str] = ()) -> str:
    """Ranked recommendations with evidence, expected gain, confidence and the exact change."""
    lines = list(header)
    findings = plan.get("findings", [])
    if not findings:
        lines.append("no recommendations: nothing measured crosses a rule's threshold")
    rows = [[i, f["title"], _gain(f.get("expected_gain")), f["confidence"]] for i, f in enumerate(findings, 1)]
    if rows:
        lines.append(tabulate(rows, headers=["#", "recommendation", "expected gain", "confidence"],
                              tablefmt="simple"))
    for i, f in enumerate(findings, 1):
        lines.append(f"{i}. {f['title']}  [{f['rule_id']}]")
        lines += [f"   evidence: {e}" for e in f.get("evidence", [])]
        lines.append(f"   change:   {f['change']}")
    config = plan.get("config", {})
    if config:
        lines.append("tuned plan: " + " ".join(f"{k}={v}" for k, v in sorted(config.items())))
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines) + "\n"
