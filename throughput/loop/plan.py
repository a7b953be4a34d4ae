"""The plan: the one class and the one loader for tuned settings (format in throughput/loop/plan_format.md).

A plan file is a flat JSON object of knob keys -> values (``throughput/knobs.py``) plus four reserved
keys: ``plan_version`` (int, 1), ``source`` (who wrote it), ``model_fingerprint`` (the plan is refused
for any other model) and ``notes`` (str or list of str, for humans: the evidence). The advisor writes
it (``throughput advise --plan-out``), ``throughput train --plan`` and ``throughput ablate --plan`` read
it. Every key and value is validated by the knob vocabulary when the file is read, so a plan never
silently drops a setting: an unknown key, a value of the wrong type or out of range is one line naming
the key. Torch-free.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Mapping

from throughput.knobs import KNOBS, KnobError, Value, canonical_key

if TYPE_CHECKING:
    from throughput.loop.config import TrainConfig

PLAN_VERSION: Final = 1
RESERVED: Final = ("model_fingerprint", "plan_version", "notes", "source")


class PlanError(ValueError):
    """A plan that cannot be read or applied (the message is one line naming the file and the problem)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Tuned settings (knob -> validated value) and why. ``target`` is what they apply to: ``recipe``
    (every key a training-loop knob) or ``script`` (every key a knob ``throughput profile --set`` takes)."""

    settings: Mapping[str, Value] = field(default_factory=dict)
    model_fingerprint: str | None = None
    source: str = ""
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        checked: dict[str, Value] = {}
        for key, value in self.settings.items():
            name = canonical_key(str(key))
            if name not in KNOBS:
                raise PlanError(f"plan {self.source or '(in memory)'}: unknown key {key!r}; a plan holds knobs "
                                f"({', '.join(KNOBS)}) and {', '.join(RESERVED)}")
            try:
                checked[name] = KNOBS[name].check(value)
            except KnobError as e:
                raise PlanError(f"plan {self.source or '(in memory)'}: {e}") from None
        object.__setattr__(self, "settings", checked)

    def recipe_settings(self) -> dict[str, Value]:
        """The settings the training loop applies; a key it cannot apply is an error, never dropped."""
        bad = [k for k in self.settings if not KNOBS[k].recipe]
        if bad:
            raise PlanError(f"plan {self.source}: {', '.join(bad)} cannot be applied by the training loop (a "
                            "script's setting: use throughput profile --set); remove it from the plan")
        return dict(self.settings)

    def apply(self, cfg: "TrainConfig") -> "TrainConfig":
        from throughput.loop.config import ConfigError
        try:
            return cfg.with_overrides(self.recipe_settings())
        except ConfigError as e:
            raise PlanError(f"plan {self.source}: {e}") from None

    def check_model(self, fingerprint: str) -> None:
        if self.model_fingerprint is not None and self.model_fingerprint != fingerprint:
            raise PlanError(f"plan {self.source} was tuned for model {self.model_fingerprint}, but this recipe's "
                            f"model is {fingerprint}: re-run the advisor for this model or drop --plan")

    def to_dict(self) -> dict[str, Any]:
        """The file form: reserved keys, then the settings in key order."""
        out: dict[str, Any] = {"plan_version": PLAN_VERSION, "source": self.source or "throughput",
                               "model_fingerprint": self.model_fingerprint}
        out.update(sorted(self.settings.items()))
        out["notes"] = list(self.notes)
        return out


def plan_from_dict(raw: Any, source: str = "plan") -> Plan:
    """A plan from its JSON form; ``PlanError`` (one line) for anything the format does not allow."""
    if not isinstance(raw, dict):
        raise PlanError(f"plan {source} must be a JSON object of config keys, got {type(raw).__name__}")
    version = raw.get("plan_version", PLAN_VERSION)
    if version != PLAN_VERSION:
        raise PlanError(f"plan {source} has plan_version {version!r}; this throughput reads version {PLAN_VERSION}")
    fingerprint = raw.get("model_fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise PlanError(f"plan {source}: model_fingerprint must be a string, got {type(fingerprint).__name__}")
    notes = raw.get("notes", [])
    notes = [notes] if isinstance(notes, str) else notes
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise PlanError(f"plan {source}: notes must be a string or a list of strings")
    settings = {k: v for k, v in raw.items() if k not in RESERVED}
    return Plan(settings=settings, model_fingerprint=fingerprint, source=source, notes=tuple(notes))


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and validate a plan file. Raises ``PlanError`` with one line naming the file."""
    from throughput.session.io import parse_json
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise PlanError(f"plan file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"plan {p} cannot be read: {str(e).splitlines()[0]}") from None
    # One line for truncated files, deep nesting and over-long numbers too (parse_json).
    return plan_from_dict(parse_json(text, f"plan {p}", PlanError), source=str(p))


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file + rename) next to ``path``."""
    from throughput.session.io import atomic_write_text
    return atomic_write_text(path, json.dumps(plan.to_dict(), indent=2) + "\n")
