"""Packing as a measured knob for training-loop recipes: an A/B of two short loop runs.

Samples/s cannot compare padded and packed layouts (a packed row holds several documents), so this
trial compares loss-bearing tokens per second, which the loop records per step. A recipe that ignores
``packing`` builds the same dataset either way and is not probed.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any, Mapping

from throughput.advisor.findings import Finding
from throughput.loop.recipe import Recipe

WARMUP_STEPS = 2     # steps of each short run left out (kernels and caches warm up)
MIN_GAIN = 0.05      # a packed layout must be this much faster to be recommended


def recipe_honors_packing(recipe: Recipe, config: Mapping[str, Any]) -> bool:
    """True when build_datasets gives a different training set with packing on (checked by type and
    length, without iterating it)."""
    from throughput.loop.config import TrainConfig
    base = TrainConfig().with_overrides({**recipe.config, **config})
    off = recipe.make_datasets(base.with_overrides({"packing": False}))[0]
    on = recipe.make_datasets(base.with_overrides({"packing": True}))[0]
    return type(on) is not type(off) or _len(on) != _len(off)


def _len(dataset: Any) -> int | None:
    try:
        return len(dataset)
    except TypeError:
        return None


def _tokens_per_s(recipe: Recipe, config: Mapping[str, Any], steps: int, out: Path) -> float | None:
    from throughput.loop import train
    from throughput.session.io import load_session
    train(recipe, overrides={**config, "steps": steps + WARMUP_STEPS, "eval_every": 0, "ckpt_every_steps": 0,
                             "ckpt_every_s": 0}, out=out, progress=False)
    steps_done = load_session(out / "session.json").steps[WARMUP_STEPS:]
    rates = [s.tokens / s.duration_s for s in steps_done if s.tokens and s.duration_s > 0]
    return statistics.median(rates) if rates else None


def packing_trial(recipe: Recipe, config: Mapping[str, Any], steps: int = 4) -> Finding | None:
    """Run the recipe padded and packed (same configuration otherwise) and recommend packing when it
    is measurably faster in loss-bearing tokens/s. None when the recipe ignores ``packing``."""
    if not recipe_honors_packing(recipe, config):
        return None
    with tempfile.TemporaryDirectory(prefix="throughput-packing-trial-") as tmp:
        padded = _tokens_per_s(recipe, {**config, "packing": False}, steps, Path(tmp) / "padded")
        packed = _tokens_per_s(recipe, {**config, "packing": True}, steps, Path(tmp) / "packed")
    if not padded or not packed:
        return None
    gain = packed / padded - 1.0
    evidence = (f"packing=false: {padded:.4g} loss-bearing tokens/s; packing=true: {packed:.4g} "
                f"(median of {steps} steps each, measured)",)
    if gain < MIN_GAIN:
        return Finding(rule_id="probe.packing", title="Keep padding (packing measured no faster)",
                       evidence=evidence, expected_gain=gain, confidence="high", change="--set packing=false",
                       settings={"packing": False})
    return Finding(rule_id="probe.packing", title="Pack sequences (measured)", evidence=evidence,
                   expected_gain=gain, confidence="high", change="--set packing=true", settings={"packing": True})
