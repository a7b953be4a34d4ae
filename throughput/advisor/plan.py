"""The tuned plan: config keys the training loop reads, with the evidence for each (torch-free).

The file is the training loop's plan format (``throughput train --plan plan.json``): a flat JSON object
of TrainConfig keys, plus the reserved keys ``plan_version`` (1), ``source``, ``model_fingerprint``
(optional) and ``notes`` (strings for humans: the evidence). Settings that are not TrainConfig keys
(for a script: ``prefetch_factor``, ``persistent_workers``, ``tf32``) are listed in ``notes`` instead,
so the loop never refuses a plan for a key it cannot apply::

    {"plan_version": 1, "source": "throughput advise", "model_fingerprint": null,
     "micro_batch_size": 32, "grad_accum": 8, "amp": "bf16", "num_workers": 3,
     "notes": ["micro_batch_size: ...measured...", "not a TrainConfig key: prefetch_factor=4"]}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Mapping, Sequence

from throughput.advisor.findings import Finding, Setting, rank
from throughput.session.io import atomic_write_text

PLAN_VERSION: Final = 1
RESERVED: Final = ("plan_version", "source", "model_fingerprint", "notes")
# TrainConfig keys the advisor may set (throughput/loop/config.py); used when the loop is not importable.
LOOP_KEYS: Final = frozenset({"micro_batch_size", "grad_accum", "amp", "num_workers", "pin_memory",
                              "ckpt_every_steps", "packing", "activation_checkpointing", "tf32",
                              "persistent_workers", "prefetch_factor", "compile"})


def loop_keys() -> frozenset[str]:
    """The training loop's config keys (from TrainConfig when the loop is installed)."""
    try:
        from dataclasses import fields as dc_fields

        from throughput.loop.config import TrainConfig
        return frozenset(f.name for f in dc_fields(TrainConfig))
    except ImportError:
        return LOOP_KEYS


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


def build_plan(findings: Sequence[Finding], measured: Mapping[str, Setting] | None = None,
               model_fingerprint: str | None = None, baseline_samples_per_s: float | None = None,
               tuned_samples_per_s: float | None = None) -> Plan:
    """Merge the findings' settings (the highest-ranked finding wins a conflicting key), then the
    ``measured`` configuration the search validated by running it, which wins over every finding: the
    search's findings are steps along the way, the configuration it ended on is the result."""
    ranked = rank(findings)
    config: dict[str, Setting] = {}
    evidence: dict[str, tuple[str, ...]] = {}
    for f in reversed(ranked):          # lower ranks first, so the best finding writes last
        for key, value in f.settings.items():
            config[key] = value
            evidence[key] = f.evidence
    config.update(measured or {})
    return Plan(config=config, evidence=evidence, findings=ranked, model_fingerprint=model_fingerprint,
                baseline_samples_per_s=baseline_samples_per_s, tuned_samples_per_s=tuned_samples_per_s)


def plan_to_dict(plan: Plan, keys: frozenset[str] | None = None) -> dict[str, Any]:
    """The file form: flat loop keys, evidence and non-loop settings in ``notes``."""
    keys = loop_keys() if keys is None else keys
    out: dict[str, Any] = {"plan_version": PLAN_VERSION, "source": "throughput advise",
                           "model_fingerprint": plan.model_fingerprint}
    notes = []
    for key, value in sorted(plan.config.items()):
        if key in keys:
            out[key] = value
        else:
            notes.append(f"not a TrainConfig key (apply it yourself): {key}={value}")
        notes += [f"{key}: {e}" for e in plan.evidence.get(key, ())]
    if plan.baseline_samples_per_s and plan.tuned_samples_per_s:
        notes.append(f"measured samples/s: baseline {plan.baseline_samples_per_s:.4g}, "
                     f"tuned {plan.tuned_samples_per_s:.4g}")
    out["notes"] = notes
    return out


def _finding_dict(f: Finding) -> dict[str, Any]:
    d = asdict(f)
    d["evidence"] = list(f.evidence)
    d["settings"] = dict(f.settings)
    return d


def advice_to_dict(plan: Plan) -> dict[str, Any]:
    """Plain data for renderers (report/advice.py): config and ranked findings."""
    return {"config": dict(plan.config), "findings": [_finding_dict(f) for f in plan.findings],
            "baseline_samples_per_s": plan.baseline_samples_per_s, "tuned_samples_per_s": plan.tuned_samples_per_s}


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file + rename) next to ``path``."""
    return atomic_write_text(path, json.dumps(plan_to_dict(plan), indent=2) + "\n")


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a plan file (settings and notes; findings are not stored). Raises PlanFormatError."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PlanFormatError(f"{p}: cannot read plan ({type(e).__name__}: {e})".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise PlanFormatError(f"{p}: a plan is a JSON object of config keys, got {type(raw).__name__}")
    if raw.get("plan_version", PLAN_VERSION) != PLAN_VERSION:
        raise PlanFormatError(f"{p}: plan_version {raw.get('plan_version')!r} unsupported (reads {PLAN_VERSION})")
    notes = raw.get("notes", [])
    try:
        return Plan(config={k: v for k, v in raw.items() if k not in RESERVED},
                    evidence={"notes": tuple(notes if isinstance(notes, list) else [str(notes)])},
                    model_fingerprint=raw.get("model_fingerprint"))
    except ValueError as e:
        raise PlanFormatError(f"{p}: {e}") from None
