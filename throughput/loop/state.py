"""The run folder: its manifest (which recipe and model it belongs to) and the checkpoint payload.

A run folder holds ``run.json`` (recipe name, model fingerprint, config), ``checkpoints/``,
``metrics.jsonl``, ``session.json`` and ``diagnosis.json``. A folder that belongs to another run is
refused before anything in it is touched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from throughput.loop.checkpoint import CheckpointError, DamagedCheckpoint, list_checkpoints

MANIFEST = "run.json"
PAYLOAD_FORMAT = "throughput-train-state"
PAYLOAD_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class RunIdentity:
    """What makes two runs 'the same run' for resuming: the recipe and the model architecture."""

    recipe: str
    model_fingerprint: str

    def describe(self) -> str:
        return f"recipe {self.recipe!r}, model {self.model_fingerprint}"


def check_run_folder(out: Path, identity: RunIdentity, resume: bool) -> None:
    """Refuse to start in a folder of another run, or to restart over a run without ``--resume``."""
    manifest = out / MANIFEST
    ckpt_dir = out / "checkpoints"
    has_run = manifest.is_file() or bool(list_checkpoints(ckpt_dir))
    if has_run and not resume:
        raise CheckpointError(f"{out} already holds a training run; pass --resume to continue it, "
                              "or choose another --out (nothing was overwritten)")
    if manifest.is_file():
        other = read_identity(manifest)
        if other != identity:
            raise CheckpointError(f"{out} belongs to another run ({other.describe()}), not this one "
                                  f"({identity.describe()}); choose another --out (nothing was overwritten)")


def read_identity(manifest: Path) -> RunIdentity:
    try:
        raw = json.loads(manifest.read_text())
        return RunIdentity(recipe=str(raw["recipe"]), model_fingerprint=str(raw["model_fingerprint"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{manifest} is not a readable run manifest ({e}); choose another --out") from None


def write_manifest(out: Path, identity: RunIdentity, config: dict[str, Any],
                   changes: dict[str, Any] | None = None) -> None:
    """Write ``run.json``: the recipe, the model and the configuration in use now. A resume that changed
    keys appends ``changes`` ({"step": N, "changed": {key: [saved, now]}}) to its ``config_changes``."""
    out.mkdir(parents=True, exist_ok=True)
    history: list[Any] = []
    try:
        old = json.loads((out / MANIFEST).read_text())
        history = list(old.get("config_changes", [])) if isinstance(old, dict) else []
    except (OSError, ValueError):
        pass
    if changes:
        history.append(changes)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"recipe": identity.recipe, "model_fingerprint": identity.model_fingerprint,
                               "config": config, "config_changes": history}, indent=2) + "\n")
    os.replace(tmp, out / MANIFEST)


# What a resume reads from a payload, and the type each must have: a payload that verifies (checksum)
# but lacks one of these was not written by this loop, and is skipped like a damaged file.
PAYLOAD_KEYS: dict[str, type | tuple[type, ...]] = {
    "format": str, "version": int, "step": int, "recipe": str, "model_fingerprint": str, "model": dict,
    "optimizer": dict, "scheduler": dict, "scaler": dict, "rng": dict, "data": dict, "clip_count": int}


def check_complete(payload: dict[str, Any]) -> None:
    """``DamagedCheckpoint`` naming the first missing or wrong-typed key a resume needs."""
    for key, kind in PAYLOAD_KEYS.items():
        if key not in payload:
            raise DamagedCheckpoint(f"payload lacks {key!r}")
        if not isinstance(payload[key], kind) or isinstance(payload[key], bool):
            raise DamagedCheckpoint(f"payload {key!r} is {type(payload[key]).__name__}, not {_kind(kind)}")
    for key in ("epoch", "index"):
        if not isinstance(payload["data"].get(key), int):
            raise DamagedCheckpoint(f"payload data lacks an integer {key!r}")
    for key in ("python", "numpy", "torch"):
        if key not in payload["rng"]:
            raise DamagedCheckpoint(f"payload rng lacks {key!r}")


def _kind(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__


def check_payload(payload: dict[str, Any], identity: RunIdentity, source: Path) -> None:
    """The checkpoint must be ours: right format, version, recipe and model."""
    if payload.get("format") != PAYLOAD_FORMAT or payload.get("version") != PAYLOAD_VERSION:
        raise CheckpointError(f"{source} is not a throughput training checkpoint (format "
                              f"{payload.get('format')!r} v{payload.get('version')!r})")
    theirs = RunIdentity(recipe=str(payload.get("recipe")), model_fingerprint=str(payload.get("model_fingerprint")))
    if theirs != identity:
        raise CheckpointError(f"{source} belongs to another run ({theirs.describe()}), not this one "
                              f"({identity.describe()}); choose another --out (nothing was overwritten)")
