"""Each recommendation's own gain, measured: the unchanged run against the run with exactly that change.

The search walks a path of configurations (workers, then precision, then micro-batch), so the gain it
saw for a knob was measured on top of the knobs changed before it. A user applies one recommendation to
their run as it is. So after the search, every candidate change is measured alone: ``rounds`` rounds,
each running the baseline and every candidate once, in an order that rotates from round to round
(neither side always first). Each run is the command the recommendation prints (``ScriptTarget``:
``throughput profile --set ...``; ``TrainTarget``: ``throughput train ... --set ...``), long enough to
measure at least ``min_window_s`` of steady steps.

Per round the candidate's rate is divided by the baseline's of the same round (adjacent in time); the
expected gain is the median of those ratios minus 1, and its noise the half-width of a band that holds
a future round: 2 standard deviations of the per-round ratios, never under ``NOISE_FLOOR``. A change
whose gain is not above both ``MIN_GAIN`` and its noise is not recommended (a note says what was
measured). Torch-free: the runs are child processes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

from throughput.advisor.trials import ProbeResult, Trial
from throughput.finding import Finding, Setting
from throughput.thresholds import MIN_GAIN, NOISE_FLOOR


class RunTarget(Protocol):
    """Runs the unchanged command with ``settings`` added, for ``steps`` measured steps."""

    def run(self, config: Mapping[str, object], steps: int) -> ProbeResult: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One change to measure alone. ``metric``: ``samples`` (samples/s) or ``tokens`` (loss-bearing
    tokens/s, for changes that repack samples, where samples/s does not compare)."""

    rule_id: str
    title: str
    settings: Mapping[str, Setting]
    evidence: tuple[str, ...] = ()
    metric: str = "samples"
    changes_training: str | None = None
    code_change: str | None = None
    confidence: str = "high"


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """Per-round paired ratios of a candidate over the baseline, and what they say."""

    ratios: tuple[float, ...]
    gain: float | None
    noise: float | None

    @property
    def worth_it(self) -> bool:
        return self.gain is not None and self.gain > MIN_GAIN and self.gain > (self.noise or 0.0)


def paired_gain(base: Sequence[float | None], other: Sequence[float | None]) -> Measured:
    """Median of the per-round ratios ``other / base`` minus 1, and the noise band (see the module doc).
    Rounds where either side measured nothing are left out; one round gives no noise estimate."""
    ratios = tuple(o / b for b, o in zip(base, other) if b and o)
    if not ratios:
        return Measured(ratios=(), gain=None, noise=None)
    gain = statistics.median(ratios) - 1.0
    noise = max(NOISE_FLOOR, 2.0 * statistics.stdev(ratios)) if len(ratios) >= 2 else None
    return Measured(ratios=ratios, gain=gain, noise=noise)


@dataclass(slots=True)
class Confirmation:
    """What the rounds measured: per-candidate results, the baseline's rates, every run (for evidence)."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    baseline: dict[str, list[float | None]] = field(default_factory=dict)   # metric -> rate per round
    plan: Measured | None = None


def _rate(r: ProbeResult, metric: str) -> float | None:
    return r.tokens_per_s if metric == "tokens" else r.samples_per_s


def confirm(target: RunTarget, candidates: Sequence[Candidate], *, rounds: int, steps: int,
            plan_settings: Mapping[str, Setting] | None = None, base_settings: Mapping[str, Setting] | None = None,
            out_of_time: Callable[[], bool] = lambda: False) -> Confirmation:
    """Measure each candidate alone against ``base_settings`` (usually none: the run as it is), and the
    whole plan (``plan_settings``) when it differs from every single candidate."""
    base = dict(base_settings or {})
    sides: list[tuple[str, dict[str, Setting]]] = [("baseline", base)]
    sides += [(c.rule_id, {**base, **c.settings}) for c in candidates]
    if plan_settings and all(dict(plan_settings) != dict(c.settings) for c in candidates):
        sides.append(("plan", {**base, **plan_settings}))
    results: dict[str, list[ProbeResult]] = {name: [] for name, _ in sides}
    out = Confirmation()
    for i in range(rounds):
        if i > 0 and out_of_time():
            out.notes.append(f"time budget reached: {i} of {rounds} confirmation round(s) ran")
            break
        order = sides[i % len(sides):] + sides[:i % len(sides)]   # rotate: no side always first
        for name, cfg in order:
            r = target.run(cfg, steps)
            results[name].append(r)
            out.trials.append(Trial(config=dict(cfg), result=r, purpose=f"confirm {name}"))
    for metric in ("samples", "tokens"):
        out.baseline[metric] = [_rate(r, metric) for r in results["baseline"]]
    for c in candidates:
        _judge(c, results[c.rule_id], out)
    if "plan" in results:
        out.plan = paired_gain(out.baseline["samples"], [_rate(r, "samples") for r in results["plan"]])
    return out


def _judge(c: Candidate, runs: list[ProbeResult], out: Confirmation) -> None:
    m = paired_gain(out.baseline[c.metric], [_rate(r, c.metric) for r in runs])
    unit = "tokens/s" if c.metric == "tokens" else "samples/s"
    failed = [r.error for r in runs if r.error]
    if m.gain is None:
        out.notes.append(f"{c.title}: not measured alone ({failed[0] if failed else 'no ' + unit}); not recommended")
        return
    text = (f"measured alone against the unchanged run, {len(m.ratios)} interleaved round(s): "
            f"{_pct(m.gain)} {unit}" + (f" +/- {m.noise:.0%}" if m.noise is not None else " (one round: noise unknown)")
            + f" (per-round ratios {', '.join(f'{r:.3f}' for r in m.ratios)})")
    if not m.worth_it:
        out.notes.append(f"{c.title}: {text}; not recommended (not above the noise and {MIN_GAIN:.0%})")
        return
    out.findings.append(Finding(rule_id=c.rule_id, title=c.title, evidence=(text, *c.evidence),
                                settings=dict(c.settings), expected_gain=m.gain, gain_noise=m.noise,
                                confidence=c.confidence, measured=True, changes_training=c.changes_training,
                                code_change=c.code_change, action=_flags(c.settings)))


def _pct(x: float) -> str:
    return f"{x * 100:+.0f}%"


def _flags(settings: Mapping[str, Setting]) -> str:
    return " ".join(f"--set {k}={v}" for k, v in sorted(settings.items()))
