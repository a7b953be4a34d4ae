"""The advisor's measured search: coordinate descent over the knobs with early stopping (torch-free).

Order of a pass (repeated while something changed, at most ``max_passes``):
1. loader workers, only while the measured data wait is above ``data_wait_done`` (then prefetch);
2. precision: each candidate the hardware supports, A/B against fp32 at the same configuration,
   accepted only for a measured gain AND losses that agree within ``loss_tolerance``. Before the
   micro-batch: a new precision changes speed and memory per sample, so the micro-batch is tuned once,
   under the precision it will run with (a rejected precision is tried again at the tuned size);
3. micro-batch: a line search over the sizes that divide the global batch, up while throughput rises
   by at least ``min_gain``, never above the size the memory fit predicts to fit the budget;
4. activation checkpointing: only when memory, not throughput, capped the micro-batch, and only
   climbed when its measured slowdown leaves room for a gain (``checkpointing_can_win``).
Every probe that runs out of memory (or over the budget) is recorded, backed off from, and reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Mapping

from throughput.advisor.memory import MemoryFit, fit_memory
from throughput.advisor.outcome import AdvisorError, SearchResult, _near_points, collapse, loss_disagreement
from throughput.advisor.space import SearchSettings, SearchSpace
from throughput.advisor.trials import ProbeResult, ProbeTarget, Trial, describe_config
from throughput.finding import Finding, Setting, int_setting
from throughput.thresholds import INPUT_BOUND_SHARE
KNOBS = ("micro_batch_size", "num_workers", "prefetch_factor", "amp", "activation_checkpointing")


def _key(cfg: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(cfg.items()))


def _micro(cfg: Mapping[str, object]) -> int:
    """The micro-batch size of a probed configuration (always set by the search)."""
    value = cfg["micro_batch_size"]
    if not isinstance(value, int):
        raise TypeError(f"micro_batch_size must be an int, got {value!r}")
    return value


def _ran(cfg: Mapping[str, object], keys: tuple[str, ...]) -> str:
    """``keys`` of a probed configuration as it ran. A batch change also names the accumulation the probe
    ran with (a script's own when the target cannot set it: ``SearchSpace.grad_accum``) and the global
    batch that made, so no label shows a split that never ran."""
    if "micro_batch_size" not in keys:
        return describe_config(cfg, keys)
    shown = tuple(dict.fromkeys(("micro_batch_size", "grad_accum", *keys)))
    accum = int_setting(cfg, "grad_accum", 1)
    return f"{describe_config(cfg, shown)} (global batch {_micro(cfg) * accum})"


@dataclass(slots=True)
class _Search:
    target: ProbeTarget
    space: SearchSpace
    settings: SearchSettings
    cache: dict[tuple[tuple[str, object], ...], ProbeResult] = field(default_factory=dict)
    trials: list[Trial] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    rates: dict[tuple[tuple[str, object], ...], list[float]] = field(default_factory=dict)
    checkpointing_tried: set[Setting] = field(default_factory=set)   # precisions it was tried under
    loader_tried: set[str] = field(default_factory=set)
    climbed: bool = False                  # the micro-batch moved up once: smaller sizes are not revisited
    cap: int | None = None                 # largest micro-batch the fp32 memory fit allows
    fit: MemoryFit | None = None

    # -- probing ----------------------------------------------------------------------------------------
    def probe(self, cfg: Mapping[str, Setting], purpose: str) -> ProbeResult:
        key = _key(cfg)
        if key not in self.cache:
            result = self.target.run(cfg, self.settings.probe_steps)
            self.cache[key] = result
            self.trials.append(Trial(config=dict(cfg), result=result, purpose=purpose))
            if result.samples_per_s is not None:
                self.rates.setdefault(key, []).append(result.samples_per_s)
            if result.oom:
                self.notes.append(f"{describe_config(cfg, KNOBS)} ran out of memory; backed off")
        return self.cache[key]

    def feasible(self, r: ProbeResult) -> bool:
        budget = self.settings.memory_budget_bytes
        over = budget is not None and r.peak_memory_bytes is not None and r.peak_memory_bytes > budget
        return r.ok and not over

    def sps(self, cfg: Mapping[str, object]) -> float:
        """Mean samples/s over every measurement of ``cfg`` (0 when it failed)."""
        values = self.rates.get(_key(cfg), [])
        return sum(values) / len(values) if values else 0.0

    def ratio(self, new: Mapping[str, Setting], cur: Mapping[str, Setting], confirm: bool = True) -> float:
        """Measured throughput of ``new`` over ``cur``. A close call (within ``confirm_band``) is measured
        once more on both sides, interleaved, before it decides anything: one short probe on a busy
        machine is noisy, and a wrong early decision sends the descent the wrong way."""
        r = self.sps(new) / self.sps(cur) if self.sps(cur) > 0 else 0.0
        band = self.settings.confirm_band
        once = len(self.rates.get(_key(new), [])) < 2 and len(self.rates.get(_key(cur), [])) < 2
        if confirm and r > 0 and abs(r - 1.0) < band and once and not self.out_of_time():
            for cfg in (cur, new):
                again = self.target.run(cfg, self.settings.probe_steps)
                self.trials.append(Trial(config=dict(cfg), result=again, purpose="confirm"))
                if again.samples_per_s is not None:
                    self.rates.setdefault(_key(cfg), []).append(again.samples_per_s)
            r = self.sps(new) / self.sps(cur) if self.sps(cur) > 0 else 0.0
        return r

    def better(self, new: Mapping[str, Setting], cur: Mapping[str, Setting]) -> bool:
        return self.feasible(self.cache[_key(new)]) and self.ratio(new, cur) > 1 + self.settings.min_gain

    def out_of_time(self) -> bool:
        limit = self.settings.time_budget_s
        if limit is not None and time.perf_counter() - self.started > limit:
            if "time budget reached" not in " ".join(self.notes):
                self.notes.append(f"time budget reached ({limit:.0f} s): later knobs were not tried")
            return True
        return False

    def with_(self, cfg: Mapping[str, Setting], **changes: Setting) -> dict[str, Setting]:
        knobs = {k: cfg[k] for k in KNOBS if k in cfg}
        knobs.update(changes)
        return self.space.config(**knobs)

    def decide(self, cfg: dict[str, Setting], new: dict[str, Setting], knob: str, why: str) -> dict[str, Setting]:
        a, b = self.sps(cfg), self.sps(new)
        gain = b / a - 1.0 if a > 0 else 0.0
        change = {k: v for k, v in new.items() if v != cfg.get(k)}
        self.findings.append(Finding(
            rule_id=f"probe.{knob}", title=f"Set {' '.join(f'{k}={v}' for k, v in change.items())}",
            evidence=(f"{_ran(cfg, tuple(change))}: {a:.4g} samples/s; "
                      f"{_ran(new, tuple(change))}: {b:.4g} samples/s (measured)", why),
            expected_gain=gain, confidence="high",
            action=" ".join(f"--set {k}={v}" for k, v in change.items()), settings=change))
        return new

    # -- knobs ------------------------------------------------------------------------------------------
    def memory_fit(self, cfg: dict[str, Setting]) -> dict[str, Setting]:
        sizes = self.space.micro_batch_size[:2]
        points: list[tuple[int, int]] = []
        for m in sizes:
            r = self.probe(self.with_(cfg, micro_batch_size=m), "memory fit")
            if r.oom or not r.ok:
                break
            if r.peak_memory_bytes is not None:
                points.append((m, r.peak_memory_bytes))
        if not points:
            first = self.cache[_key(self.with_(cfg, micro_batch_size=sizes[0]))]
            if not first.ok:
                raise AdvisorError(f"micro-batch {sizes[0]} already fails ({first.error}); nothing smaller "
                                   "to try: reduce the model or sequence size, or free memory")
            return self.with_(cfg, micro_batch_size=sizes[0])
        budget = self.settings.memory_budget_bytes
        if len(points) >= 2 and budget is not None:
            self.fit = fit_memory(points)
            self.cap = self.fit.max_batch(budget, self.settings.safety_margin)
        elif len(points) < len(sizes):
            self.cap = points[-1][0]
        best = max((m for m, _ in points), default=sizes[0])
        return self.with_(cfg, micro_batch_size=best)

    def refit(self, cfg: Mapping[str, Setting]) -> None:
        """Fit peak memory over the probes that share ``cfg``'s precision and checkpointing, and cap the
        micro-batch by the budget. Memory depends on those two knobs, not on the loader ones."""
        budget = self.settings.memory_budget_bytes
        points = {_micro(t.config): t.result.peak_memory_bytes
                  for t in self.trials if t.result.ok and t.result.peak_memory_bytes is not None
                  and all(t.config.get(k) == cfg.get(k) for k in ("amp", "activation_checkpointing"))}
        if budget is None or len(points) < 2:
            return
        self.fit = fit_memory(_near_points(points, None))
        self.cap = self.fit.max_batch(budget, self.settings.safety_margin)

    def tune_micro(self, cfg: dict[str, Setting]) -> dict[str, Setting]:
        """Line search over the few micro-batch sizes (powers of two) that divide the global batch: every
        size from the current one up to the memory cap is measured (the cap is refitted after each probe;
        an out-of-memory or over-budget size ends the scan), so one noisy probe cannot stop the climb.
        The fastest is kept, preferring the larger of sizes within ``min_gain`` (fewer accumulation
        steps). Only when nothing above helps is the next smaller size tried."""
        sizes = self.space.micro_batch_size
        self.refit(cfg)
        micro = int_setting(cfg, "micro_batch_size")
        scanned = [cfg]
        for m in (m for m in sizes if m > micro):
            if self.out_of_time() or (self.cap is not None and m > self.cap):
                break                         # predicted not to fit: never probe a sure OOM
            new = self.with_(cfg, micro_batch_size=m)
            r = self.probe(new, "micro-batch")
            self.refit(cfg)
            if not self.feasible(r):
                break
            scanned.append(new)
        best = max(scanned, key=self.sps)
        for c in sorted(scanned, key=lambda c: -int_setting(c, "micro_batch_size")):
            if int_setting(c, "micro_batch_size") <= int_setting(best, "micro_batch_size"):
                break
            if self.sps(c) >= self.sps(best) * (1 - 2 * self.settings.min_gain) and \
                    self.ratio(c, best) >= 1 - self.settings.min_gain:
                best = c                      # as fast (after a second look): fewer accumulation steps
                break
        if best is not cfg and self.ratio(best, cfg) >= 1 - self.settings.min_gain:
            self.climbed = True
            return self.decide(cfg, best, "micro_batch_size", "largest micro-batch within "
                               f"{self.settings.min_gain:.0%} of the fastest measured size")
        smaller = [m for m in sizes if m < micro] if not self.climbed else []
        while smaller and not self.out_of_time():
            new = self.with_(cfg, micro_batch_size=smaller.pop())
            self.probe(new, "micro-batch")
            if not self.better(new, cfg):
                break
            cfg = self.decide(cfg, new, "micro_batch_size", "smaller micro-batch measured faster")
        return cfg

    def tune_workers(self, cfg: dict[str, Setting]) -> dict[str, Setting]:
        """While the data wait is high: try the most workers first (one probe tells whether parallel
        loading helps at all), then step down while a smaller count stays as fast (fewer processes, less
        memory). Then the same for ``prefetch_factor``."""
        for knob in ("num_workers", "prefetch_factor"):
            values = getattr(self.space, knob)
            wait = self.cache[_key(cfg)].data_wait_share or 0.0
            now = int(cfg.get(knob, values[0]))
            later = [v for v in values if v > now]
            if wait < self.settings.data_wait_done or not later or self.out_of_time():
                continue
            if knob == "prefetch_factor" and (int_setting(cfg, "num_workers", 0) == 0
                                               or knob in self.loader_tried):
                continue              # prefetch depth: one A/B per search, it barely interacts with the rest
            self.loader_tried.add(knob)
            top = self.with_(cfg, **{knob: later[-1]})
            self.probe(top, "data loading")
            if not self.better(top, cfg):
                continue
            # Hiding a wait of share w can speed a step up by w / (1 - w) at most: a larger measured gain
            # is noise (bursty worker arrivals in a short probe), not something workers can deliver.
            if self.ratio(top, cfg) - 1 > wait / (1 - wait) + 2 * self.settings.min_gain:
                self.notes.append(f"{knob}={later[-1]} measured {self.ratio(top, cfg) - 1:.0%} faster, more than "
                                  f"hiding a {wait:.0%} data wait allows: treated as noise")
                continue
            best = top
            for v in reversed(later[:-1]):
                smaller = self.with_(cfg, **{knob: v})
                self.probe(smaller, "data loading")
                # no re-measurement here: a wrong step down costs at most min_gain
                if self.out_of_time() or self.ratio(smaller, best, confirm=False) < 1 - self.settings.min_gain:
                    break
                best = smaller
            cfg = self.decide(cfg, best, knob, f"data wait was {wait:.0%} of step time")
        return cfg

    def tune_amp(self, cfg: dict[str, Setting]) -> dict[str, Setting]:
        """A/B each supported precision against fp32. Skipped while the step is input-bound (data wait
        >= INPUT_BOUND_SHARE): compute is not the bottleneck, so precision cannot raise throughput."""
        wait = self.cache[_key(cfg)].data_wait_share or 0.0
        own = cfg.get("amp")
        if own != "fp32" and own in self.space.amp:
            return cfg        # a precision this hardware runs fast: the script's own, or an earlier pass's
        if own != "fp32":
            return self.without_slow_amp(cfg, str(own), wait)
        if wait >= INPUT_BOUND_SHARE or len(self.space.amp) < 2:
            if len(self.space.amp) > 1 and not any(n.startswith("precision not tried") for n in self.notes):
                self.notes.append(f"precision not tried: data wait is {wait:.0%} of step time")
            return cfg
        ref_cfg = self.with_(cfg, amp="fp32")
        ref = self.probe(ref_cfg, "precision reference")
        best = cfg
        for amp in self.space.amp[1:]:
            if self.out_of_time() or amp == cfg.get("amp"):
                continue
            new = self.with_(cfg, amp=amp)
            r = self.probe(new, "precision A/B")
            agree = loss_disagreement(ref.losses, r.losses)
            if agree is None or agree > self.settings.loss_tolerance:
                self.notes.append(f"amp={amp}: losses disagree with fp32 by "
                                  f"{'n/a' if agree is None else f'{agree:.1%}'}; not recommended")
                continue
            if self.better(new, best):
                best = self.decide(best, new, "amp", f"losses agree with fp32 within {agree:.2%} "
                                   f"(tolerance {self.settings.loss_tolerance:.0%})")
        if best is not cfg:
            self.memory_point(best)
        return best

    def without_slow_amp(self, cfg: dict[str, Setting], own: str, wait: float) -> dict[str, Setting]:
        """The script's own autocast at a precision this hardware does not run fast (not among the
        space's precisions: bf16 on a CPU without AMX/AVX512-BF16): A/B fp32 (its autocast turned off
        in the forward) against it. No loss check: fp32 is the reference the others are checked against."""
        if wait >= INPUT_BOUND_SHARE:
            self.notes.append(f"precision not tried: data wait is {wait:.0%} of step time")
            return cfg
        new = self.with_(cfg, amp="fp32")
        self.probe(new, "precision A/B")
        if self.better(new, cfg):
            return self.decide(cfg, new, "amp", f"the script's {own} autocast is not fast on this hardware")
        return cfg

    def memory_point(self, cfg: dict[str, Setting]) -> None:
        """With a budget, probe the next smaller size under ``cfg``'s precision/checkpointing, so memory
        can be fitted (two sizes) before a larger size is tried. The nearest smaller size, not the
        smallest: tiny batches are dominated by allocator granularity and extrapolate worst."""
        sizes = self.space.micro_batch_size
        smaller = [m for m in sizes if m < int_setting(cfg, "micro_batch_size")]
        if self.settings.memory_budget_bytes is not None and smaller and not self.out_of_time():
            self.probe(self.with_(cfg, micro_batch_size=smaller[-1]), "memory fit")

    def checkpointing_can_win(self, cfg: dict[str, Setting], start: dict[str, Setting], nxt: int) -> bool:
        """Whether checkpointing at the next size up could beat ``cfg`` by ``min_gain``: its measured
        slowdown at the same size (the recomputation), times the best gain one doubling of the micro-batch
        gave without it (an optimistic bound: gains shrink as the batch grows). When it cannot, the memory
        point and the climb are skipped (two or more probes that cannot change the answer)."""
        if not self.feasible(self.cache[_key(start)]) or self.sps(cfg) <= 0:
            return False
        slowdown = self.sps(start) / self.sps(cfg)
        same = [t.config for t in self.trials if t.result.ok and all(
            t.config.get(k) == cfg.get(k) for k in ("amp", "activation_checkpointing", "num_workers"))]
        measured = sorted((_micro(c), self.sps(c)) for c in same)
        gains = [b / a for (ma, a), (mb, b) in zip(measured, measured[1:]) if a > 0 and mb == 2 * ma]
        per_doubling = max(max(gains, default=2.0), 1.0)   # nothing measured: assume linear scaling
        bound = slowdown * per_doubling ** math.log2(nxt / int_setting(cfg, "micro_batch_size"))
        if bound > 1 + self.settings.min_gain:
            return True
        self.notes.append(f"activation checkpointing: {slowdown:.2f}x the speed at micro-batch "
                          f"{cfg['micro_batch_size']}, and a doubling of the micro-batch gained at most "
                          f"{per_doubling - 1:.0%}: it cannot win at {nxt}; not climbed")
        return False

    def tune_checkpointing(self, cfg: dict[str, Setting]) -> dict[str, Setting]:
        sizes = self.space.micro_batch_size
        micro = int_setting(cfg, "micro_batch_size")
        self.refit(cfg)                       # the cap for this precision, not the fp32 one
        nxt = next((s for s in sizes if s > micro), None)
        over = [t for t in self.trials if t.config.get("micro_batch_size") == nxt and not self.feasible(t.result)]
        capped = nxt is not None and (self.cap is not None and nxt > self.cap or bool(over))
        if True not in self.space.activation_checkpointing or cfg.get("activation_checkpointing") or not capped \
                or cfg.get("amp") in self.checkpointing_tried:
            return cfg   # checkpointing only recomputes: worth it only where memory, not speed, stopped the climb
        self.checkpointing_tried.add(cfg.get("amp"))
        start = self.with_(cfg, activation_checkpointing=True)
        self.probe(start, "activation checkpointing")
        if nxt is None or not self.checkpointing_can_win(cfg, start, nxt):
            return cfg
        self.memory_point(start)
        saved_fit, saved_cap = self.fit, self.cap
        self.refit(start)
        best_ac = start
        for m in (s for s in sizes if s > micro):
            if self.out_of_time() or (self.cap is not None and m > self.cap):
                break
            new = self.with_(start, micro_batch_size=m)
            self.probe(new, "activation checkpointing")
            # no re-measurement inside the climb: only the final checkpointing-vs-not call decides
            if not self.feasible(self.cache[_key(new)]) or \
                    self.ratio(new, best_ac, confirm=False) <= 1 + self.settings.min_gain:
                break
            best_ac = new
        self.fit, self.cap = saved_fit, saved_cap
        if best_ac is not start and self.better(best_ac, cfg):
            return self.decide(cfg, best_ac, "activation_checkpointing",
                               f"memory capped the micro-batch at {micro}; recomputing activations fits "
                               f"{best_ac['micro_batch_size']}")
        return cfg


def _tune_extras(s: _Search, cfg: dict[str, Setting]) -> dict[str, Setting]:
    """torch.compile, channels_last, fused optimizers...: each an A/B at the tuned configuration."""
    for key in s.space.extras:
        if s.out_of_time():
            break
        new = {**cfg, key: True}
        s.probe(new, f"candidate {key}")
        if s.better(new, cfg):
            cfg = s.decide(cfg, new, key, f"{key} measured faster at the tuned configuration")
        else:
            s.notes.append(f"{key}: no measured gain at the tuned configuration; not recommended")
    return cfg


def search(target: ProbeTarget, space: SearchSpace, settings: SearchSettings | None = None,
           start: Mapping[str, Setting] | None = None) -> SearchResult:
    """Run the measured search. ``start`` holds the knobs to begin from (the user's current setup)."""
    s = _Search(target=target, space=space, settings=settings or SearchSettings())
    knobs: dict[str, Setting] = {"micro_batch_size": space.micro_batch_size[len(space.micro_batch_size) // 2],
                                 "num_workers": space.num_workers[0], "prefetch_factor": space.prefetch_factor[0],
                                 "amp": "fp32", "activation_checkpointing": False}
    knobs.update({k: v for k, v in (start or {}).items() if k in KNOBS})
    cfg = space.config(**knobs)
    if s.settings.memory_budget_bytes is not None:
        cfg = s.memory_fit(cfg)
    base = s.probe(cfg, "baseline")
    if not s.feasible(base):
        cfg = s.memory_fit(s.with_(cfg, micro_batch_size=space.micro_batch_size[0]))
    if not s.feasible(s.cache[_key(cfg)]):
        r = s.cache[_key(cfg)]
        raise AdvisorError(f"micro-batch {cfg['micro_batch_size']} needs {r.peak_memory_bytes} bytes, over the "
                           f"memory budget of {s.settings.memory_budget_bytes} bytes; raise --memory-budget")
    baseline = next(t for t in s.trials if _key(t.config) == _key(cfg))
    for _ in range(s.settings.max_passes):
        before = _key(cfg)
        for step in (s.tune_workers, s.tune_amp, s.tune_micro, s.tune_checkpointing):
            if not s.out_of_time():
                cfg = step(cfg)
        if _key(cfg) == before:
            break
    return _finish(s, _tune_extras(s, cfg), baseline)


def _finish(s: _Search, cfg: dict[str, Setting], baseline: Trial) -> SearchResult:
    result = s.cache[_key(cfg)]
    predicted = None
    points = {_micro(t.config): t.result.peak_memory_bytes
              for t in s.trials if t.result.ok and t.result.peak_memory_bytes is not None
              and all(t.config.get(k) == cfg.get(k) for k in ("amp", "activation_checkpointing"))}
    chosen = int_setting(cfg, "micro_batch_size")
    below = {m: p for m, p in points.items() if m < chosen}
    if len(below) >= 2:   # a prediction made without the chosen size's own measurement
        predicted = fit_memory(_near_points(below, chosen)).predict_bytes(chosen)
    return SearchResult(config=cfg, result=result, baseline=baseline, trials=tuple(s.trials),
                        findings=collapse(s.findings), memory_fit=s.fit, predicted_peak_bytes=predicted,
                        elapsed_s=time.perf_counter() - s.started, notes=tuple(dict.fromkeys(s.notes)))

