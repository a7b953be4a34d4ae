"""How to apply a recommendation to the target it was made for: the argv, or the code change (torch-free).

A recommendation's ``settings`` are knobs (throughput/knobs.py). For a script, the knobs a script takes
from outside run as ``throughput profile --set K=V ... script.py args``; for a recipe, the training
loop's knobs as ``throughput train recipe.py --set K=V ... --out runs/<recipe>-<id>``. Both commands also
accept ``--max-steps N`` (for ``profile``, before the script). A setting the target cannot take from
outside makes the argv ``None`` and is described as a code change, with a snippet from its knob.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from throughput.finding import Finding, Setting
from throughput.knobs import KNOBS, Knob, show


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetRef:
    """What the advice is for: ``kind`` script | recipe, its path, and a script's arguments."""

    kind: str
    path: str
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("script", "recipe"):
            raise ValueError(f"target kind must be script or recipe, got {self.kind!r}")

    def takes(self, key: str) -> bool:
        """Whether this target takes knob ``key`` without a code change."""
        k = KNOBS.get(key)
        return k is not None and (k.script if self.kind == "script" else k.recipe)


def set_flags(settings: Mapping[str, Setting]) -> list[str]:
    """``--set K=V`` for each setting, in key order (None values are left out)."""
    out: list[str] = []
    for key in sorted(settings):
        value = settings[key]
        if value is not None:
            out += ["--set", f"{key}={show(value)}"]
    return out


def apply_argv(settings: Mapping[str, Setting], target: TargetRef, rec_id: str = "tuned") -> list[str] | None:
    """The full argv (starting with "throughput") that applies ``settings`` to ``target``; None when a
    setting needs a code change, or there is nothing to set."""
    if not settings or not all(target.takes(k) for k in settings):
        return None
    if target.kind == "script":
        return ["throughput", "profile", *set_flags(settings), target.path, *target.args]
    stem = Path(target.path).stem
    return ["throughput", "train", target.path, *set_flags(settings), "--out", f"runs/{stem}-{_slug(rec_id)}"]


def with_options(argv: Sequence[str], options: Sequence[str]) -> list[str]:
    """``argv`` with our own options added where the command reads them: right after ``profile`` (the
    script's arguments come last), at the end for ``train`` (a later ``--out`` wins)."""
    argv = list(argv)
    if len(argv) >= 2 and argv[1] == "profile":
        return argv[:2] + list(options) + argv[2:]
    return argv + list(options)


def code_change(finding: Finding, target: TargetRef) -> str | None:
    """The exact edit for the settings the target cannot take from outside (knob snippets), or the
    finding's own action when it has no settings; None when the argv applies everything. A finding's
    explicit ``code_change`` wins."""
    if finding.code_change:
        return finding.code_change
    if not finding.settings:
        return finding.action or None
    manual = [(KNOBS[k], v) for k, v in finding.settings.items()
              if k in KNOBS and not target.takes(k) and v is not None]
    unknown = [k for k in finding.settings if k not in KNOBS]
    parts = [_snippet(k, v) for k, v in manual] + [f"{k}: {finding.action}" for k in unknown]
    return "\n".join(parts) or None


def _snippet(k: Knob, value: Setting) -> str:
    if k.name == "amp":      # the snippet names the torch dtype
        value = {"bf16": "bfloat16", "fp16": "float16"}.get(str(value), str(value))
    return k.code_change(value if value is not None else "")


def recommendation(finding: Finding, target: TargetRef | None) -> dict[str, Any]:
    """The JSON form of one recommendation (``throughput advise --format json``)."""
    argv = apply_argv(finding.settings, target, finding.rule_id) if target is not None else None
    return {"id": finding.rule_id, "title": finding.title, "expected_gain": finding.expected_gain,
            "gain_noise": finding.gain_noise, "confidence": finding.confidence, "measured": finding.measured,
            "settings": dict(finding.settings), "apply": argv,
            "code_change": code_change(finding, target) if target is not None else (finding.action or None),
            "changes_training": finding.changes_training, "evidence": list(finding.evidence)}


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)
