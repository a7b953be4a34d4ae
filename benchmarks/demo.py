"""The demo's speed-up, measured two ways in one run: the demo's own story (naive run, advice, tuned
run), then interleaved short runs of the naive recipe and the tuned plan (N T N T ...), compared by
the median of per-step tokens/s. Target (issue 8): tuned >= 2x naive on this project's CPU machines.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import machine, main, write_report
from throughput.demo import recipe as demo_recipe
from throughput.demo.run import NAIVE, DemoSettings, run_demo, train_run
from throughput.demo.story import REQUIRED_SPEEDUP, run_figures
from throughput.session.io import load_session


def _short_run(out: Path, steps: int, plan: Path | None, overrides: dict[str, object]) -> float | None:
    train_run(out, steps, lambda _: None, plan=plan, overrides=overrides)
    return run_figures(out.name, load_session(out / "session.json"), demo_recipe.CONTEXT).tokens_per_s


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="throughput-demo-bench-") as tmp:
        return _run(Path(tmp), quick)


def _run(out: Path, quick: bool) -> dict[str, Any]:
    settings = DemoSettings(out=out / "demo", steps=20 if quick else 40, time_budget_s=40 if quick else 60)
    story = run_demo(settings, log=lambda line: print(line, flush=True))
    plan = settings.out / "plan.json"
    rounds, steps = (1, 12) if quick else (3, 20)
    rates: dict[str, list[float]] = {"naive": [], "tuned": []}
    for r in range(rounds):
        for label in (("naive", "tuned") if r % 2 == 0 else ("tuned", "naive")):
            rate = _short_run(out / f"{label}-{r}", steps, plan if label == "tuned" else None,
                              NAIVE if label == "naive" else {})
            if rate is not None:
                rates[label].append(rate)
    naive, tuned = statistics.median(rates["naive"]), statistics.median(rates["tuned"])
    interleaved = tuned / naive
    data = {"machine": machine(), "quick": quick, "story_speedup": story.speedup,
            "interleaved_speedup": interleaved, "naive_tokens_per_s": rates["naive"],
            "tuned_tokens_per_s": rates["tuned"], "target": REQUIRED_SPEEDUP,
            "token_utilization": {"naive": story.before.token_utilization, "tuned": story.after.token_utilization},
            "pass": interleaved >= REQUIRED_SPEEDUP and (story.speedup or 0) >= REQUIRED_SPEEDUP,
            "plan": plan.read_text()}
    md = "\n".join([
        "# Demo speed-up (naive recipe vs the advisor's tuned plan)", "",
        f"Machine: {machine()}.", "",
        f"- Demo story (one naive run, then one tuned run): **{story.speedup or 0:.2f}x** tokens/s.",
        f"- Interleaved short runs ({rounds} round(s) of {steps} steps, N/T alternating): **{interleaved:.2f}x** "
        f"(medians of per-step tokens/s: naive {naive:.0f}, tuned {tuned:.0f}).",
        f"- Token utilization: naive {story.before.token_utilization or 0:.1%}, "
        f"tuned {story.after.token_utilization or 0:.1%}.",
        f"- Target: >= {REQUIRED_SPEEDUP:.0f}x: {'pass' if data['pass'] else 'FAIL'}.", "",
        "Plan:", "", "```json", plan.read_text().strip(), "```", "",
    ])
    write_report("demo", md, data)
    print(md)
    return data


if __name__ == "__main__":
    main(run, __doc__)
