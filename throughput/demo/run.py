"""``throughput demo``: profile a naive recipe, advise, train with the tuned plan, report before/after.

Everything runs offline on the built-in workload (``throughput/demo/recipe.py``). The speed-up is
measured in this run: tokens/s of the tuned run over tokens/s of the naive run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from throughput.demo import recipe as demo_recipe
from throughput.demo.report import write_demo_report
from throughput.demo.story import Story, run_figures, story
from throughput.session.io import load_session

NAIVE = {"packing": False, "amp": "fp32", "num_workers": 0}


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSettings:
    out: Path = Path("reports/demo")
    steps: int = 120                 # optimizer steps of each training run
    probe_steps: int = 2             # measured steps per advisor probe
    time_budget_s: float = 60.0      # advisor probing budget
    confirm_rounds: int = 2          # rounds measuring each change alone (real training-loop runs)

    def __post_init__(self) -> None:
        if self.steps < 5:
            raise ValueError(f"steps must be >= 5 (2 are warm-up), got {self.steps}")
        if self.probe_steps < 1 or self.time_budget_s <= 0:
            raise ValueError("probe_steps must be >= 1 and time_budget_s > 0")


def train_run(out: Path, steps: int, log: Callable[[str], None], *, plan: Path | None = None,
              overrides: dict[str, object] | None = None) -> None:
    """One training run of the demo recipe (no periodic eval or checkpoints), logged in one line."""
    from throughput.loop import train
    t0 = time.perf_counter()
    result = train(demo_recipe, plan=str(plan) if plan else None,
                   overrides={**(overrides or {}), "steps": steps, "eval_every": 0, "ckpt_every_steps": 0},
                   out=out, progress=False)
    log(f"   {result.step} steps in {time.perf_counter() - t0:.0f} s, final loss {result.final_train_loss:.3f}")


def _advise(out: Path, settings: DemoSettings, log: Callable[[str], None]) -> Path:
    """Run `throughput advise --recipe` on the demo recipe in its own process, as a user would: its
    probes pin allocator settings for memory measurement, which must not slow the tuned run here.
    Its output goes to advice.txt."""
    plan = out / "plan.json"
    cmd = [sys.executable, "-m", "throughput", "advise", "--recipe", demo_recipe.__file__, "--plan-out", str(plan),
           "--probe-steps", str(settings.probe_steps), "--time-budget", str(settings.time_budget_s),
           "--confirm-rounds", str(settings.confirm_rounds), "--confirm-window", "1"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (out / "advice.txt").write_text(proc.stdout + (f"\n{proc.stderr}" if proc.returncode else ""))
    if proc.returncode != 0 or not plan.exists():
        raise RuntimeError(f"the advisor failed (exit {proc.returncode}); see {out / 'advice.txt'}")
    log(f"   advice in {time.perf_counter() - t0:.0f} s -> {plan}")
    return plan


def run_demo(settings: DemoSettings = DemoSettings(), log: Callable[[str], None] = print) -> Story:
    out = settings.out
    if out.exists():
        shutil.rmtree(out)      # the demo's own folder: re-running replaces the previous demo
    out.mkdir(parents=True)
    log(f"1/4 naive recipe (one document per row padded to {demo_recipe.CONTEXT}, fp32, no workers)")
    train_run(out / "naive", settings.steps, log, overrides=NAIVE)
    log("2/4 advisor: short measured probes of the recipe")
    plan = _advise(out, settings, log)
    settings_chosen = {k: v for k, v in json.loads(plan.read_text()).items() if k not in ("notes", "source")}
    log(f"3/4 tuned plan: {json.dumps(settings_chosen)}")
    train_run(out / "tuned", settings.steps, log, plan=plan)
    log("4/4 report")
    before = run_figures("naive", load_session(out / "naive" / "session.json"), demo_recipe.CONTEXT)
    after = run_figures("tuned", load_session(out / "tuned" / "session.json"), demo_recipe.CONTEXT)
    result = story(before, after)
    write_demo_report(result, out)
    return result
