"""A labelled set of synthetic training curves, generated from fixed seeds (no files, no torch).

Each curve is one of: healthy, spike, divergence, plateau, overfitting, nonfinite. The shapes follow
what real runs look like: exponential decay to a floor with multiplicative noise (3%), grad norms with
log-normal noise (10%), validation every 20 steps with 0.5% noise.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

LABELS = ("healthy", "spike", "divergence", "plateau", "overfitting", "nonfinite")
# Which diagnosis rule ids count as detecting each label (healthy: none).
RULES_FOR = {"spike": {"loss.spike", "grad_norm.spike"}, "divergence": {"loss.divergence"},
             "plateau": {"loss.flat"}, "overfitting": {"loss.overfitting"}, "nonfinite": {"loss.nonfinite"}}


@dataclass(frozen=True)
class Curve:
    label: str
    steps: list[int]
    losses: list[float]
    grad_norms: list[float]
    val: list[tuple[int, float]]


def make_curve(label: str, seed: int) -> Curve:
    rng = random.Random(seed)
    n = rng.randint(300, 800)
    start, floor = rng.uniform(4.0, 8.0), rng.uniform(1.0, 2.5)
    tau = n * rng.uniform(0.1, 0.25)
    clean = [floor + (start - floor) * math.exp(-t / tau) for t in range(n)]
    grad = [rng.uniform(0.5, 2.0)] * n
    if label == "plateau":
        clean = [start * (1 - 0.02 * t / n) for t in range(n)]      # under 5% improvement in total
    if label == "overfitting":
        tau = n * rng.uniform(0.4, 0.6)                               # training still falling at the end
        clean = [floor + (start - floor) * math.exp(-t / tau) for t in range(n)]
    losses = [c * math.exp(rng.gauss(0, 0.03)) for c in clean]
    norms = [g * math.exp(rng.gauss(0, 0.1)) for g in grad]
    val = _validation(label, clean, rng, n)
    if label == "spike":
        _add_spikes(losses, norms, rng, n)
    if label == "divergence":
        _diverge(losses, norms, rng, n)
    if label == "nonfinite":
        at = rng.randint(n // 3, n - 10)
        losses[at:] = [rng.choice([math.nan, math.inf])] * (n - at)
    return Curve(label, list(range(1, n + 1)), losses, norms, val)


def _validation(label: str, clean: list[float], rng: random.Random, n: int) -> list[tuple[int, float]]:
    gap = rng.uniform(0.05, 0.2)
    val = []
    turn = int(n * rng.uniform(0.3, 0.5))
    for t in range(19, n, 20):
        v = clean[t] + gap
        if label == "overfitting" and t > turn:
            v = clean[turn] + gap + (t - turn) / n * rng.uniform(0.5, 1.5)
        val.append((t + 1, v * math.exp(rng.gauss(0, 0.005))))
    return val


def _add_spikes(losses: list[float], norms: list[float], rng: random.Random, n: int) -> None:
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(40, n - 10)
        losses[at] *= rng.uniform(1.5, 4.0)
        norms[at] *= rng.uniform(5.0, 30.0)


def _diverge(losses: list[float], norms: list[float], rng: random.Random, n: int) -> None:
    at = rng.randint(n // 3, 2 * n // 3)
    rate = rng.uniform(5.0, 40.0)
    for t in range(at, n):
        growth = math.exp(min(3.0, (t - at) / rate))
        losses[t] *= growth
        norms[t] *= growth ** 2


def labelled_set(per_label: int = 20, seed: int = 1234) -> list[Curve]:
    """``per_label`` curves of each label; curve i of label j uses seed ``seed + 1000 * j + i``."""
    return [make_curve(label, seed + 1000 * j + i) for j, label in enumerate(LABELS) for i in range(per_label)]
