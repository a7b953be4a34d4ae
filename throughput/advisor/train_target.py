"""``TrainTarget``: measure a recipe by running the command a recommendation prints, ``throughput train``.

The recipe search probes a stripped-down loop in-process (``RecipeTarget``: cheap, isolated, exact about
memory). What a user runs is the training loop itself, with its data pipeline, clipping, schedule and
evaluation; the issue that led here saw probe baselines 20-35% below a real run. So each recipe
recommendation is confirmed with real runs, one subprocess each::

    python -m throughput train recipe.py --quiet --out TMP --max-steps N --set k=v ...

and read from ``TMP/metrics.jsonl``: samples (and loss-bearing tokens) over the seconds of the steady
steps, evaluation and checkpoint time excluded (the loop's ``train_s``). TMP is deleted afterwards.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from throughput.advisor.script import ScriptTarget, warmup_for
from throughput.advisor.trials import Config, ProbeResult, one_line, text_is_oom
from throughput.knobs import KNOBS, show

RECIPE_KEYS = frozenset(k for k, knob in KNOBS.items() if knob.recipe)


class TrainTarget(ScriptTarget):
    """Runs ``throughput train recipe --set ...`` for warm-up + ``steps`` updates (see the module doc).
    ``base`` settings are added to every run (e.g. the advisor's ``--set`` of the user)."""

    supported = RECIPE_KEYS

    def __init__(self, recipe: str | os.PathLike[str], *, timeout_s: float = 300.0, warmup_steps: int = 2,
                 python: str = sys.executable, base: Mapping[str, Any] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> None:
        super().__init__(recipe, (), timeout_s=timeout_s, python=python, warmup_steps=warmup_steps, cwd=cwd)
        self.base = dict(base or {})
        self._warmup = warmup_steps       # of the run being parsed (runs are sequential)

    def command(self, config: Config, steps: int, out_dir: Path) -> list[str]:
        warmup = self._warmup = warmup_for(config, self.warmup_steps)
        cmd = [self.python, "-m", "throughput", "train", str(self.script), "--quiet", "--out", str(out_dir),
               "--max-steps", str(steps + warmup)]
        merged = {**self.base, **config}
        for key in sorted(merged):
            if key in RECIPE_KEYS and merged[key] is not None:
                cmd += ["--set", f"{key}={show(merged[key])}"]
        return cmd

    def parse(self, out: Path, output: str, status: int, timed_out: bool) -> tuple[ProbeResult, Any]:
        if timed_out:
            return ProbeResult(error=f"run timed out after {self.timeout_s:.0f} s"), None
        from throughput.loop.metrics import read_metrics
        records = [r for r in read_metrics(out / "metrics.jsonl") if r.get("kind") == "train"]
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        if os.waitstatus_to_exitcode(status) != 0 or not records:
            why = _last_line(output) or "no training step was logged"
            return ProbeResult(oom=text_is_oom(output) or killed, error=one_line(why)), None
        return measure_records(records, self._warmup), None


def measure_records(records: Sequence[Mapping[str, Any]], warmup: int) -> ProbeResult:
    """Rates over the steady steps of ``metrics.jsonl`` train records: total samples (tokens) over total
    ``train_s`` (evaluation and checkpoints excluded); all steps when there are too few to drop warm-up."""
    steady = list(records[warmup:]) or list(records)
    train_s = sum(float(r.get("train_s") or r.get("step_s") or 0.0) for r in steady)
    samples = sum(int(r.get("samples") or 0) for r in steady)
    tokens = [r.get("tokens") for r in steady]
    data_s = sum(float((r.get("phase_s") or {}).get("data", 0.0)) for r in steady)
    peaks = [int(r["rss_peak_bytes"]) for r in steady if r.get("rss_peak_bytes")] + \
        [int(r["cuda_max_allocated_bytes"]) for r in steady if r.get("cuda_max_allocated_bytes")]
    return ProbeResult(samples_per_s=samples / train_s if train_s > 0 and samples else None,
                       tokens_per_s=(sum(int(t) for t in tokens if t is not None) / train_s
                                     if train_s > 0 and all(t is not None for t in tokens) else None),
                       losses=tuple(float(r["loss"]) for r in steady), peak_memory_bytes=max(peaks) if peaks else None,
                       data_wait_share=data_s / train_s if train_s > 0 else None, steps=len(steady))


def _last_line(output: str) -> str | None:
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else None
