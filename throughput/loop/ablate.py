"""Ablations: short controlled runs that change one variable at a time from the baseline.

The baseline runs ``repeats`` times with seeds seed, seed+1, ...; the spread of those runs is the noise.
Every variant runs with the baseline's own seed, so its difference from the seed-``seed`` baseline is a
paired comparison. A difference smaller than ``NOISE_SIGMAS`` standard deviations of the baseline repeats
is marked as within noise: not evidence either way.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from throughput.loop.config import ConfigError, TrainConfig

from throughput.thresholds import ABLATION_NOISE_SIGMAS as NOISE_SIGMAS
METRICS = ("final_train_loss", "final_val_loss", "tokens_per_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    name: str                       # "baseline" or "key=value"
    changes: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    variant: Variant
    end: str
    metrics: Mapping[str, float | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    name: str
    metrics: Mapping[str, float | None]
    delta: Mapping[str, float | None]          # variant - baseline (same seed)
    within_noise: Mapping[str, bool | None]    # None: noise unknown (one baseline run) or no value


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    baseline_runs: int
    noise_std: Mapping[str, float | None]
    rows: tuple[Row, ...]


def parse_vary(items: Sequence[str]) -> dict[str, list[str]]:
    """``["schedule=cosine,constant", "amp=bf16,fp32"]`` -> ``{"schedule": ["cosine", "constant"], ...}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not choices:
            raise ConfigError(f"--vary expects key=value1,value2,..., got {item!r}")
        out[key.strip()] = choices
    return out


def plan_variants(base: TrainConfig, vary: Mapping[str, Sequence[str]], repeats: int) -> list[Variant]:
    """Baseline repeats first, then one variant per (key, value) that differs from the baseline."""
    if repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {repeats}")
    variants = [Variant(name="baseline", seed=base.seed + i) for i in range(repeats)]
    for key, values in vary.items():
        for value in values:
            changed = base.with_overrides({key: value})  # validates key and value now, before any run
            if getattr(changed, key) != getattr(base, key):
                variants.append(Variant(name=f"{key}={value}", changes={key: value}, seed=base.seed))
    return variants


def run_ablation(base: TrainConfig, vary: Mapping[str, Sequence[str]], repeats: int, out: Path,
                 run_one: Callable[[TrainConfig], Any], log: Callable[[str], None] = lambda _: None
                 ) -> Comparison:
    """Run every variant via ``run_one(config) -> TrainResult`` and compare. Writes ablation.md/.json."""
    outcomes = []
    variants = plan_variants(base, vary, repeats)
    for i, v in enumerate(variants):
        cfg = base.with_overrides(dict(v.changes, seed=v.seed, out_dir=str(out / f"{i:02d}-{_slug(v.name)}")))
        result = run_one(cfg)
        metrics = {m: getattr(result, m) for m in METRICS}
        outcomes.append(Outcome(variant=v, end=result.end, metrics=metrics))
        log(f"ablate: {v.name} (seed {v.seed}): " + ", ".join(f"{k} {_fmt(x)}" for k, x in metrics.items()))
    comparison = compare(outcomes)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text(render_markdown(comparison))
    (out / "ablation.json").write_text(json.dumps(to_dict(comparison), indent=2) + "\n")
    return comparison


def compare(outcomes: Sequence[Outcome]) -> Comparison:
    """Pure: noise from the baseline repeats, deltas of each variant from the first baseline run."""
    baselines = [o for o in outcomes if o.variant.name == "baseline"]
    if not baselines:
        raise ValueError("an ablation needs at least one baseline run")
    ref = baselines[0]
    noise = {m: _std([o.metrics[m] for o in baselines]) for m in METRICS}
    rows = []
    for o in [ref] + [o for o in outcomes if o.variant.name != "baseline"]:
        delta = {m: _sub(o.metrics[m], ref.metrics[m]) for m in METRICS}
        within = {m: (abs(d) < NOISE_SIGMAS * noise[m]) if d is not None and noise[m] is not None else None  # type: ignore[operator]  # both checked not None in the condition
                  for m, d in delta.items()}
        rows.append(Row(name=o.variant.name, metrics=dict(o.metrics), delta=delta, within_noise=within))
    return Comparison(baseline_runs=len(baselines), noise_std=noise, rows=tuple(rows))


def render_markdown(c: Comparison) -> str:
    head = ["variant"] + [f"{m} (delta)" for m in METRICS]
    lines = ["# Ablation", "",
             f"Baseline repeated {c.baseline_runs}x with different seeds; noise = sample std of those runs. "
             f"`~` marks a difference smaller than {NOISE_SIGMAS:g} std (within noise).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in c.rows:
        cells = [row.name]
        for m in METRICS:
            mark = "~" if row.within_noise[m] else ""
            delta = "" if row.name == "baseline" else f" ({_fmt(row.delta[m], signed=True)}{mark})"
            cells.append(f"{_fmt(row.metrics[m])}{delta}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "noise std: " + ", ".join(f"{m} {_fmt(s)}" for m, s in c.noise_std.items()), ""]
    return "\n".join(lines)


def to_dict(c: Comparison) -> dict[str, Any]:
    return {"baseline_runs": c.baseline_runs, "noise_sigmas": NOISE_SIGMAS, "noise_std": dict(c.noise_std),
            "rows": [{"name": r.name, "metrics": dict(r.metrics), "delta": dict(r.delta),
                      "within_noise": dict(r.within_noise)} for r in c.rows]}


def _std(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.stdev(finite) if len(finite) >= 2 else None


def _sub(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


__all__ = ["Comparison", "Outcome", "Row", "Variant", "compare", "parse_vary", "plan_variants", "render_markdown",
           "run_ablation"]
