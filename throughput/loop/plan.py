"""Tuned plans: a JSON object of TrainConfig keys -> values (format in throughput/loop/plan_format.md).

Reserved keys: ``model_fingerprint`` (str: the plan is refused for any other model), ``plan_version``
(int, 1), ``notes`` (str or list of str: ignored by the loop, for humans), ``source`` (str: who wrote it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from throughput.loop.config import ConfigError, TrainConfig

PLAN_VERSION = 1
RESERVED = ("model_fingerprint", "plan_version", "notes", "source")


class PlanError(ValueError):
    """A plan that cannot be applied (the message names the file and the problem)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    settings: Mapping[str, Any] = field(default_factory=dict)
    model_fingerprint: str | None = None
    source: str = ""

    def apply(self, cfg: TrainConfig) -> TrainConfig:
        try:
            return cfg.with_overrides(self.settings)
        except ConfigError as e:
            raise PlanError(f"plan {self.source}: {e}") from None

    def check_model(self, fingerprint: str) -> None:
        if self.model_fingerprint is not None and self.model_fingerprint != fingerprint:
            raise PlanError(f"plan {self.source} was tuned for model {self.model_fingerprint}, but this recipe's "
                            f"model is {fingerprint}: re-run the advisor for this model or drop --plan")


def plan_from_dict(raw: Any, source: str = "plan") -> Plan:
    if not isinstance(raw, dict):
        raise PlanError(f"plan {source} must be a JSON object of config keys, got {type(raw).__name__}")
    version = raw.get("plan_version", PLAN_VERSION)
    if version != PLAN_VERSION:
        raise PlanError(f"plan {source} has plan_version {version!r}; this throughput reads version {PLAN_VERSION}")
    fingerprint = raw.get("model_fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise PlanError(f"plan {source}: model_fingerprint must be a string, got {type(fingerprint).__name__}")
    from throughput.loop.settings import check_settings
    try:   # keys, types and finite numbers, with the path in the file (throughput.validation)
        settings = check_settings({k: v for k, v in raw.items() if k not in RESERVED}, f"plan {source}")
    except ConfigError as e:
        raise PlanError(str(e)) from None
    plan = Plan(settings=settings, model_fingerprint=fingerprint, source=source)
    plan.apply(TrainConfig())  # validate keys and types now, with the plan's name in the message
    return plan


def load_plan(path: str | Path) -> Plan:
    from throughput.session.io import parse_json
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise PlanError(f"plan file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"plan {p} cannot be read: {str(e).splitlines()[0]}") from None
    return plan_from_dict(parse_json(text, f"plan {p}", PlanError), source=str(p))
