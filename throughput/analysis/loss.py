"""Loss-curve diagnosis: read a training curve the way an experienced engineer does. Pure, torch-free.

Rules (each finding names its rule, the step window, the numbers it saw and what to do):

- ``loss.nonfinite``   a NaN or infinite training loss.
- ``loss.divergence``  the smoothed loss (trailing rolling median) climbs well above its best so far
                       (> ``divergence_ratio`` x best) or above the first loss (> ``divergence_vs_first``
                       x; a healthy run never climbs back over its initial loss).
- ``loss.spike``       an excursion the training suffers from: the loss's level (the median of
                       ``loss_spike_points`` points centred on one) rises, in log space, above its baseline
                       (the median of the ``spike_window`` points before them) by ``loss_spike_z`` robust standard
                       deviations of that baseline and by ``loss_spike_ratio`` x, then comes back below that
                       bar before the curve ends (a lasting jump is a divergence, not a spike). One hard
                       mini-batch whose neighbours are normal is not one: see ``_loss_spikes``.
- ``grad_norm.spike``  isolated points with a robust z-score (median/MAD of the preceding ``spike_window``
                       log grad norms) above ``spike_z`` that return to the baseline within ``spike_return``.
- ``loss.flat``        the smoothed loss improved by less than ``flat_improvement`` of its starting
                       value over the run, or ends above ``chance_loss`` when that is given.
- ``loss.overfitting`` validation loss rising from its minimum, or flat, while training loss falls.

Non-finite points are left out of the other rules. A divergence suppresses ``loss.flat`` and the
spikes inside its window (they are the same event).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from throughput import thresholds as T
from throughput.finding import Finding
from throughput.session.records import StepRecord

ACTIONS: Mapping[str, str] = {
    "loss.nonfinite": "resume from the last checkpoint before it with a lower lr or tighter clipping; "
                      "check the batch at that step for bad values; with fp16 make sure GradScaler is on",
    "loss.divergence": "lower the learning rate (2-10x) or lengthen warm-up; keep gradient clipping on; "
                       "resume from the checkpoint at the best step",
    # the same, for a run that recorded no gradient clipping: advice must not contradict the session
    "loss.divergence.unclipped": "lower the learning rate (2-10x) or lengthen warm-up; clip gradients "
                                 "(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)): this run did "
                                 "not; resume from the checkpoint at the best step",
    "loss.spike": "log the sample ids at the spike steps and inspect those batches; if spikes recur, lower "
                  "lr, tighten clip_grad_norm, or lower Adam beta2 (e.g. 0.95)",
    "grad_norm.spike": "tighten clip_grad_norm around the typical norm; inspect the batches at those steps",
    "loss.flat": "raise the learning rate (3-10x) or check the data: labels aligned with inputs, the loss "
                 "reading the model's output, gradients reaching the parameters",
    "loss.overfitting": "stop at the validation minimum, add data or augmentation, raise weight decay or "
                        "dropout, or use a smaller model",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagnosisParams:
    """Thresholds; the defaults reach F1 >= 0.9 on the labelled synthetic set in tests/loop."""

    divergence_ratio: float = T.LOSS_DIVERGENCE_RATIO      # smoothed loss above this x its best so far
    divergence_vs_first: float = T.LOSS_DIVERGENCE_VS_FIRST  # smoothed loss above this x the first loss
    divergence_gave_back: float = T.LOSS_DIVERGENCE_GAVE_BACK  # and this share of its fall given back
    divergence_noise_z: float = T.LOSS_DIVERGENCE_NOISE_Z      # and this many standard errors of noise
    spike_window: int = 30          # points of baseline before a (loss or grad norm) spike
    spike_z: float = T.LOSS_SPIKE_Z  # grad_norm.spike: robust z of one isolated log grad norm
    spike_return: int = 3           # grad_norm.spike: points after it that must fall back below spike_z / 2
    loss_spike_points: int = 5      # loss.spike: odd; the points whose median is the loss's level (3 high)
    loss_spike_z: float = T.LOSS_SPIKE_LEVEL_Z          # loss.spike: level rise, in robust std of log loss
    loss_spike_ratio: float = T.LOSS_SPIKE_LEVEL_RATIO  # loss.spike: and the level this x its baseline
    flat_improvement: float = T.LOSS_FLAT_IMPROVEMENT
    min_points: int = 20            # fewer training points: only loss.nonfinite is checked
    overfit_rise: float = T.OVERFIT_RISE          # val rise above its minimum, relative
    overfit_flat: float = T.OVERFIT_FLAT          # |relative val change| counted as flat
    overfit_train_drop: float = T.OVERFIT_TRAIN_DROP
    chance_loss: float | None = None

    def __post_init__(self) -> None:
        if self.divergence_ratio <= 1.0:
            raise ValueError(f"divergence_ratio must be > 1, got {self.divergence_ratio}")
        if self.spike_window < 5 or self.spike_z <= 0:
            raise ValueError("spike_window must be >= 5 and spike_z > 0")
        if self.loss_spike_points < 3 or self.loss_spike_points % 2 == 0:
            raise ValueError(f"loss_spike_points must be odd (the level is centred on a point) and >= 3 (a median "
                             f"of fewer follows one step), got {self.loss_spike_points}")
        if self.loss_spike_z <= 0 or self.loss_spike_ratio <= 1.0:
            raise ValueError(f"loss_spike_z must be > 0 and loss_spike_ratio > 1, got {self.loss_spike_z} and "
                             f"{self.loss_spike_ratio}")


def diagnose(*, steps: Sequence[int], losses: Sequence[float], grad_norms: Sequence[float] | None = None,
             val: Sequence[tuple[int, float]] = (), params: DiagnosisParams = DiagnosisParams(),
             clipping: bool | None = None) -> tuple[Finding, ...]:
    """All findings for one curve. ``steps`` and ``losses`` (and ``grad_norms``) are parallel;
    ``val`` holds (step, validation loss) pairs. ``clipping``: whether the run clipped gradients (None:
    not known), so that an action never contradicts what was recorded."""
    if len(steps) != len(losses) or (grad_norms is not None and len(grad_norms) != len(losses)):
        raise ValueError("steps, losses and grad_norms must have the same length")
    findings: list[Finding] = []
    nonfinite = [s for s, x in zip(steps, losses) if not math.isfinite(x)]
    if nonfinite:
        before = [x for s, x in zip(steps, losses) if s < nonfinite[0]]
        last_ok = before[-1] if before else math.nan
        findings.append(_finding("loss.nonfinite", nonfinite[0], nonfinite[-1],
                                 {"count": float(len(nonfinite)), "first_step": float(nonfinite[0]),
                                  "last_finite_loss": last_ok},
                                 f"training loss was NaN/inf at {len(nonfinite)} step(s), first at step {nonfinite[0]}"))
    pts = [(s, x) for s, x in zip(steps, losses) if math.isfinite(x)]
    if len(pts) < params.min_points:
        return tuple(findings)
    w = max(5, min(50, len(pts) // 20))
    divergence = _divergence(pts, w, params)
    if divergence is not None and clipping is False:
        divergence = _finding("loss.divergence", divergence.first_step or 0, divergence.last_step or 0,
                              dict(divergence.values), divergence.title, action_key="loss.divergence.unclipped")
    if divergence is not None:
        findings.append(divergence)
    elif (flat := _flat(pts, w, params)) is not None:
        findings.append(flat)
    skip = ((divergence.first_step or 0) - w, divergence.last_step or 0) if divergence else None
    findings += _loss_spikes(pts, params, skip)
    if grad_norms is not None:
        g = [(s, x) for s, x in zip(steps, grad_norms) if math.isfinite(x) and x > 0]
        findings += _grad_norm_spikes(g, params, skip)
    if (over := _overfitting(pts, val, w, params)) is not None:
        findings.append(over)
    return tuple(findings)


def diagnose_steps(steps: Sequence[StepRecord], params: DiagnosisParams = DiagnosisParams(),
                   clipping: bool | None = None) -> tuple[Finding, ...]:
    """Diagnosis of a profiled session's steps (those with a captured loss)."""
    pairs = [(s.index, s.loss, s.grad_norm) for s in steps if s.loss is not None]
    norms = [n for _, _, n in pairs if n is not None]
    return diagnose(steps=[i for i, _, _ in pairs], losses=[float(loss) for _, loss, _ in pairs],
                    grad_norms=norms if len(norms) == len(pairs) else None, params=params, clipping=clipping)


def rolling_median(values: Sequence[float], window: int) -> list[float]:
    """Trailing median: element i is the median of values[max(0, i-window+1) : i+1]."""
    return [_median(values[max(0, i - window + 1):i + 1]) for i in range(len(values))]


def _divergence(pts: list[tuple[int, float]], w: int, p: DiagnosisParams) -> Finding | None:
    """The smoothed loss well above its best so far, or above the very first loss (measured before any
    update: a healthy run never climbs back over it). The second catches a blow-up in the first window.
    "Well above its best" is relative twice over: ``divergence_ratio`` times the best, and
    ``divergence_gave_back`` of the fall from the first smoothed value to the best given back. A long
    run that converged to ~1e-5 from 0.17 wanders at several times its best (a ratio) while giving back
    a ten-thousandth of its fall: noise, not a divergence."""
    values = [x for _, x in pts]
    smooth = rolling_median(values, w)
    first = values[0]
    start = smooth[w - 1]
    sigma = step_noise(values)
    # standard errors of a rise: a median of w points less another (its best), and a median less one point
    # (the first loss); the median of w normal draws has a standard error of 1.2533 sigma / sqrt(w)
    over_best = p.divergence_noise_z * 1.2533 * sigma * math.sqrt(2.0 / w)
    over_first = p.divergence_noise_z * sigma * math.sqrt(1.0 + 1.5708 / w)
    best, best_i, by_first = math.inf, 0, False
    hits: list[int] = []
    for i in range(w - 1, len(pts)):
        if smooth[i] < best:
            best, best_i = smooth[i], i
        gave_back = smooth[i] - best > p.divergence_gave_back * max(start - best, 0.0)
        above_best = (smooth[i] > best * p.divergence_ratio + 1e-3 * abs(start) and gave_back
                      and smooth[i] - best > over_best)
        above_first = first > 0 and smooth[i] > first * p.divergence_vs_first and smooth[i] - first > over_first
        if above_best or above_first:
            by_first = by_first or (not hits and not above_best)
            hits.append(i)
    before = smooth[hits[0] - 1] if hits and hits[0] > w - 1 else first
    if not hits or (hits[-1] < len(pts) - 1 and smooth[-1] <= before):
        # no climb, or one the loss came all the way back from by the end (below where it was when the
        # climb began): a burst of bad batches, whose spikes are reported as such. "Lower the learning
        # rate, resume from the best step" would be wrong advice for it
        return None
    peak = max(smooth[hits[0]:])
    than = (f"above {p.divergence_vs_first:g}x its first value {first:.4g}" if by_first else
            f"above {p.divergence_ratio:g}x its best {best:.4g}")
    return _finding("loss.divergence", pts[hits[0]][0], pts[hits[-1]][0],
                    {"first_loss": first, "best_smoothed_loss": best, "best_step": float(pts[best_i][0]),
                     "peak_smoothed_loss": peak, "final_smoothed_loss": smooth[-1], "window": float(w),
                     "step_noise": sigma},
                    f"loss climbed to {peak:.4g} (rolling median over {w} steps) from step {pts[hits[0]][0]}, "
                    f"{than}, beyond its step-to-step noise")


def step_noise(values: Sequence[float]) -> float:
    """The loss's noise from one step to the next (the standard deviation of one value), robustly: the
    median absolute deviation of consecutive differences, x 1.4826 (normal scale) / sqrt(2) (a difference
    holds two draws). A trend shifts the differences alike and adds little; a divergence's climb is a
    minority of them. 0 for fewer than 3 values."""
    diffs = [b - a for a, b in zip(values, values[1:])]
    if len(diffs) < 2:
        return 0.0
    mid = _median(diffs)
    return 1.4826 * _median([abs(d - mid) for d in diffs]) / math.sqrt(2.0)


def _flat(pts: list[tuple[int, float]], w: int, p: DiagnosisParams) -> Finding | None:
    values = [x for _, x in pts]
    w = max(w, len(values) // 10)  # a longer window: "no progress" is a claim about the whole run
    start, end = _median(values[:w]), _median(values[-w:])
    improvement = (start - end) / abs(start) if start else 0.0
    above_chance = p.chance_loss is not None and end >= T.LOSS_NEAR_CHANCE * p.chance_loss
    if improvement >= p.flat_improvement and not above_chance:
        return None
    evidence = {"initial_smoothed_loss": start, "final_smoothed_loss": end, "relative_improvement": improvement}
    if p.chance_loss is not None:
        evidence["chance_loss"] = p.chance_loss
    return _finding("loss.flat", pts[0][0], pts[-1][0], evidence,
                    f"loss went from {start:.4g} to {end:.4g} ({_better_or_worse(improvement)}) over steps "
                    f"{pts[0][0]}-{pts[-1][0]}: flat" + (" and near chance level" if above_chance else ""))
    # (the step numbers, not len(pts): on a long run the curve is a thinned sample of the steps)


def _better_or_worse(improvement: float) -> str:
    """``2.0% better`` for a relative fall of the loss, ``1.4% worse`` for a rise (never ``-1.4% better``)."""
    return f"{improvement:.1%} better" if improvement >= 0 else f"{-improvement:.1%} worse"


def _loss_spikes(pts: list[tuple[int, float]], p: DiagnosisParams, skip: tuple[int, int] | None) -> list[Finding]:
    """Loss spikes: excursions of the loss's level that came back, each counted once.

    Contract. The level at point i is the median of the ``loss_spike_points`` (odd, k) points centred on
    it; its baseline is the median of the ``spike_window`` points before that stretch. A spike starts at
    the first point whose level is above the baseline by both ``loss_spike_z`` x the baseline's robust
    standard deviation (1.4826 x its median absolute deviation) and a factor ``loss_spike_ratio``, and
    ends at the first later point whose level is back at or below that bar (the baseline is the one from
    before the start: the spike does not raise its own bar). One that never comes back before the curve
    ends is a lasting jump (a divergence or a shift in the data), not a spike. One starting inside a
    divergence's window (``skip``, in steps) is part of that divergence. Values are compared as
    log(loss) unless a loss is negative (then as they are, and the factor applies to the baseline's
    magnitude); a loss of exactly 0 counts as the smallest positive loss seen.

    Why a level, and why a log. A mini-batch's loss is a mean over few samples of a right-skewed
    per-sample loss: with batch 1-8 one hard sample lifts one step 10-20x over the median, and as the loss
    converges the spread of the bulk shrinks, so on the raw scale that step scored a robust z of 40 in a
    healthy run. A spike the training suffers from (too high an lr, Adam's second moment lagging a burst
    of large gradients) moves the weights, so the steps after it are high too: the median of 5 points
    ignores 2 high ones and rises only when most are. The log turns the baseline's spread into a spread of
    ratios, which a right-skewed loss keeps as it converges (its raw spread shrinks with it). Over 40
    healthy SGD and Adam runs of an MLP (batch 1-64, 1,670-3,000 points each) the level rose at most 2.9
    robust std; a mid-run label shift the model then relearned, 6.7.

    Bounded like the rest: this reads the (possibly thinned) curve point by point, so persistence is
    counted in kept points; on a thinned stretch a spike shorter than ~3 strides is not seen."""
    h = p.loss_spike_points // 2
    w = p.spike_window
    if len(pts) < w + 2 * h + 1:
        return []
    positive = [x for _, x in pts if x > 0]
    log = bool(positive) and all(x >= 0 for _, x in pts)
    # a loss of exactly 0 underflowed (a float32 cross-entropy of a confident sample): it stands, below
    # the bulk, at the smallest positive loss, where a median treats it alike
    floor = min(positive, default=1.0)
    vals = [math.log(max(x, floor)) if log else x for _, x in pts]
    level = {i: _median(vals[i - h:i + h + 1]) for i in range(w + h, len(vals) - h)}
    spikes: list[_Spike] = []
    i = w + h
    while i < len(vals) - h:
        base = vals[i - h - w:i - h]
        med = _median(base)
        sd = 1.4826 * _median([abs(v - med) for v in base])
        # the factor is also the floor where the baseline barely varies (sd ~ 0): a 3% bump is no spike
        margin = max(p.loss_spike_z * sd, math.log(p.loss_spike_ratio) if log
                     else (p.loss_spike_ratio - 1.0) * abs(med), 1e-12)
        if level[i] <= med + margin:
            i += 1
            continue
        back = next((j for j in range(i + 1, len(vals) - h) if level[j] <= med + margin), None)
        if back is None:
            break   # never came back below the bar: a lasting jump (the divergence rule's), not a spike
        rise = max(level[j] for j in range(i, back)) - med
        if not (skip is not None and skip[0] <= pts[i][0] <= skip[1]):
            spikes.append(_Spike(first=i, back=back, over_bar=rise / margin,
                                 rise_sd=rise / sd if sd > 0 else None, ratio=math.exp(rise) if log else None))
        i = back
    if not spikes:
        return []
    worst = max(spikes, key=lambda s: s.over_bar)
    evidence = {"count": float(len(spikes)), "worst_step": float(pts[worst.first][0]),
                "worst_back_at_step": float(pts[worst.back][0]), "level_points": float(2 * h + 1),
                "window": float(w)}
    if worst.ratio is not None:
        evidence["max_level_ratio"] = worst.ratio
    if worst.rise_sd is not None:
        evidence["max_rise_sd"] = worst.rise_sd
    rose = (f"to {worst.ratio:.3g}x" if worst.ratio is not None else
            f"{worst.rise_sd:.3g} robust std above" if worst.rise_sd is not None else "above")
    return [_finding("loss.spike", pts[spikes[0].first][0], pts[spikes[-1].back][0], evidence,
                     f"{len(spikes)} loss spike(s): the loss's level (median of {2 * h + 1} points) rose {rose} "
                     f"the median of the {w} points before (bars: {p.loss_spike_ratio:g}x and {p.loss_spike_z:g} "
                     f"robust std of {'log ' if log else ''}loss), worst from step {pts[worst.first][0]} until "
                     f"step {pts[worst.back][0]}")]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Spike:
    """One loss spike, by point index into the curve."""

    first: int                # the first point whose level is above the bar
    back: int                 # the first point after it whose level is back below the bar
    over_bar: float           # the peak rise over the bar's margin (> 1): which spike is the worst
    rise_sd: float | None     # the peak rise in robust std of the baseline (None: a constant baseline)
    ratio: float | None       # the peak level / the baseline (None: not in log space)


def _grad_norm_spikes(pts: list[tuple[int, float]], p: DiagnosisParams,
                      skip: tuple[int, int] | None) -> list[Finding]:
    """Isolated log grad norms with a robust z-score (median/MAD of the preceding ``spike_window``) above
    ``spike_z`` that fall back within ``spike_return`` points. One step is enough here: a gradient norm
    is what clipping acts on, step by step."""
    vals = [math.log(x) for _, x in pts]
    hits: list[tuple[int, float]] = []
    for i in range(p.spike_window, len(vals) - p.spike_return):
        base = vals[i - p.spike_window:i]
        med = _median(base)
        scale = max(1.4826 * _median([abs(v - med) for v in base]), 1e-3 * abs(med), 1e-12)
        z = (vals[i] - med) / scale
        after = _median([(v - med) / scale for v in vals[i + 1:i + 1 + p.spike_return]])
        in_skip = skip is not None and skip[0] <= pts[i][0] <= skip[1]
        if z > p.spike_z and after < p.spike_z / 2 and not in_skip:
            hits.append((i, z))
    if not hits:
        return []
    worst_i, worst_z = max(hits, key=lambda h: h[1])
    evidence = {"count": float(len(hits)), "max_z": worst_z, "worst_step": float(pts[worst_i][0]),
                "worst_value": pts[worst_i][1], "window": float(p.spike_window)}
    return [_finding("grad_norm.spike", pts[hits[0][0]][0], pts[hits[-1][0]][0], evidence,
                     f"{len(hits)} gradient norm spike(s) (robust z up to {worst_z:.1f} > {p.spike_z:g}), "
                     f"worst at step {pts[worst_i][0]}")]


def _overfitting(pts: list[tuple[int, float]], val: Sequence[tuple[int, float]], w: int,
                 p: DiagnosisParams) -> Finding | None:
    v = [(s, x) for s, x in val if math.isfinite(x)]
    if len(v) < 4:
        return None
    j = min(range(len(v)), key=lambda i: v[i][1])
    v_min, v_last = v[j][1], v[-1][1]
    k = max(3, len(v) // 3)
    rising = j < len(v) - 1 and v_last - v_min > p.overfit_rise * abs(v_min)
    flat = abs(v_last - v[-k][1]) <= p.overfit_flat * abs(v[-k][1])
    since = v[j][0] if rising else v[-k][0]
    drop = _train_drop(pts, since, w)
    if not (rising or flat) or drop < p.overfit_train_drop:
        return None
    how = "rising" if rising else "flat"
    return _finding("loss.overfitting", since, v[-1][0],
                    {"val_min": v_min, "val_min_step": float(v[j][0]), "val_last": v_last,
                     "train_relative_drop": drop},
                    f"validation loss {how} ({v_min:.4g} at step {v[j][0]} -> {v_last:.4g}) while training "
                    f"loss fell {drop:.1%} since step {since}")


def _train_drop(pts: list[tuple[int, float]], since: int, w: int) -> float:
    before = [x for s, x in pts if s <= since][-w:]
    after = [x for _, x in pts][-w:]
    if not before:
        return 0.0
    start = _median(before)
    return (start - _median(after)) / abs(start) if start else 0.0


def _finding(rule: str, first: int, last: int, values: dict[str, float], message: str,
             action_key: str | None = None) -> Finding:
    """A loss finding: its numbers in ``values`` and, as text, in ``evidence``."""
    evidence = (f"steps {first}-{last}",) + tuple(f"{k}={v:.4g}" for k, v in values.items())
    return Finding(rule_id=rule, first_step=first, last_step=last, values=values, evidence=evidence,
                   title=message, action=ACTIONS[action_key or rule])


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return math.nan
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
