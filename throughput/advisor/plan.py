"""The tuned plan: config keys the training loop reads, with the evidence for each (torch-free).

File format (JSON, schema ``throughput.plan`` version 1)::

    {"schema": "throughput.plan", "schema_version": 1,
     "config": {"micro_batch_size": 32, "grad_accum": 8, "amp": "bf16", "num_workers": 3, ...},
     "model_fingerprint": "…" | null,
     "evidence": {"micro_batch_size": ["peak 1.2 GiB at 32 (fit: …)", ...], ...},
     "findings": [{"rule_id": ..., "title": ..., "evidence": [...], "expected_gain": 0.3, ...}]}

``config`` uses the names of the training loop's TrainConfig, so ``throughput train --plan plan.json``
applies it directly. Findings are kept ranked; ``throughput.report.advice`` formats them.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Mapping, Sequence

from throughput.advisor.findings import Finding, Setting, rank

PLAN_SCHEMA: Final = "throughput.plan"
PLAN_VERSION: Final = 1


class PlanFormatError(ValueError):
    """A plan file that cannot be read; the message is one line naming the file and the problem."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Tuned settings plus why. ``config`` maps TrainConfig keys to values."""

    config: Mapping[str, Setting]
    evidence: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    model_fingerprint: str | None = None
    baseline_samples_per_s: float | None = None
    tuned_samples_per_s: float | None = None

    def __post_init__(self) -> None:
        for key, value in self.config.items():
            if not isinstance(key, str) or not isinstance(value, (bool, int, float, str, type(None))):
                raise ValueError(f"plan config {key!r}: values must be bool/int/float/str/None, got {value!r}")


def build_plan(findings: Sequence[Finding], base: Mapping[str, Setting] | None = None,
               model_fingerprint: str | None = None, baseline_samples_per_s: float | None = None,
               tuned_samples_per_s: float | None = None) -> Plan:
    """Merge the findings' settings over ``base`` (highest-ranked finding wins a conflicting key)."""
    ranked = rank(findings)
    config: dict[str, Setting] = dict(base or {})
    evidence: dict[str, tuple[str, ...]] = {}
    for f in reversed(ranked):          # lower ranks first, so the best finding writes last
        for key, value in f.settings.items():
            config[key] = value
            evidence[key] = f.evidence
    return Plan(config=config, evidence=evidence, findings=ranked, model_fingerprint=model_fingerprint,
                baseline_samples_per_s=baseline_samples_per_s, tuned_samples_per_s=tuned_samples_per_s)


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "schema": PLAN_SCHEMA, "schema_version": PLAN_VERSION, "config": dict(plan.config),
        "model_fingerprint": plan.model_fingerprint,
        "evidence": {k: list(v) for k, v in plan.evidence.items()},
        "baseline_samples_per_s": plan.baseline_samples_per_s, "tuned_samples_per_s": plan.tuned_samples_per_s,
        "findings": [_finding_dict(f) for f in plan.findings],
    }


def _finding_dict(f: Finding) -> dict[str, Any]:
    d = asdict(f)
    d["evidence"] = list(f.evidence)
    d["settings"] = dict(f.settings)
    return d


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file + rename) next to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(plan_to_dict(plan), indent=2) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a plan file; raises PlanFormatError with one line for anything else."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PlanFormatError(f"{p}: cannot read plan ({type(e).__name__}: {e})".splitlines()[0]) from None
    if not isinstance(raw, dict) or raw.get("schema") != PLAN_SCHEMA:
        raise PlanFormatError(f"{p}: not a throughput plan (no '{PLAN_SCHEMA}' schema marker)")
    if raw.get("schema_version") != PLAN_VERSION:
        raise PlanFormatError(f"{p}: plan version {raw.get('schema_version')!r} unsupported (reads {PLAN_VERSION})")
    try:
        findings = tuple(Finding(**{**f, "evidence": tuple(f["evidence"])}) for f in raw.get("findings", []))
        return Plan(config=dict(raw["config"]),
                    evidence={k: tuple(v) for k, v in raw.get("evidence", {}).items()}, findings=findings,
                    model_fingerprint=raw.get("model_fingerprint"),
                    baseline_samples_per_s=raw.get("baseline_samples_per_s"),
                    tuned_samples_per_s=raw.get("tuned_samples_per_s"))
    except (KeyError, TypeError, ValueError) as e:
        raise PlanFormatError(f"{p}: malformed plan ({type(e).__name__}: {e})".splitlines()[0]) from None
