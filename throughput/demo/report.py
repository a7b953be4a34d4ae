"""The demo's before/after report: report.md, summary.json, plots, and each run's own report folder."""

from __future__ import annotations

import json
from pathlib import Path

from tabulate import tabulate

from throughput.analysis.series import step_series
from throughput.demo.story import DEMO_WARMUP_STEPS, REQUIRED_SPEEDUP, RunFigures, Story
from throughput.report.folder import write_report
from throughput.report.format import percent, rate, seconds
from throughput.report.jsonfmt import summary_to_dict
from throughput.session.io import load_session


def _row(f: RunFigures) -> list[str]:
    return [f.label, rate(f.tokens_per_s, "tokens/s"), rate(f.samples_per_s, "rows/s"), seconds(f.step_median_s),
            percent(f.token_utilization), f"{f.final_loss:.3f}" if f.final_loss is not None else "-",
            f.summary.verdict.headline]


def _shares(story: Story) -> list[list[str]]:
    names = [p.phase for p in story.before.summary.phases]
    names += [p.phase for p in story.after.summary.phases if p.phase not in names]
    b = {p.phase: p for p in story.before.summary.phases}
    a = {p.phase: p for p in story.after.summary.phases}
    return [[n, seconds(b[n].mean_s) if n in b else "-", percent(b[n].share) if n in b else "-",
             seconds(a[n].mean_s) if n in a else "-", percent(a[n].share) if n in a else "-"] for n in names]


def _findings(f: RunFigures) -> list[str]:
    return [f"- **{f.label}** `{x.kind}`: {x.message} (try: {x.action})" for x in f.summary.findings]


def _plots(out: Path) -> list[str]:
    from throughput.report import plots
    naive = step_series(load_session(out / "naive" / "session.json"))
    tuned = step_series(load_session(out / "tuned" / "session.json"))
    runs = [("naive", naive), ("tuned", tuned)]
    try:
        files = [plots.plot_throughput(runs, out / "throughput.png", unit="tokens"),
                 plots.plot_loss(runs, out / "loss.png"),
                 plots.plot_step_breakdown(naive, out / "naive_breakdown.png", title="Naive: step time by phase"),
                 plots.plot_step_breakdown(tuned, out / "tuned_breakdown.png", title="Tuned: step time by phase")]
    except ImportError as e:
        return [f"Plots not drawn: {e}."]
    return [f"![{p.stem}]({p.name})" for p in files]


def render_demo_markdown(story: Story, advice: str, plan: dict[str, object], plot_lines: list[str]) -> str:
    verdict = "meets" if story.meets_target else "does NOT meet"
    speed = f"{story.speedup:.2f}x" if story.speedup is not None else "not measurable"
    lines = [
        "# throughput demo: naive recipe -> advice -> tuned plan", "",
        f"**Tuned vs naive: {speed} tokens/s** (measured in this run; {verdict} the {REQUIRED_SPEEDUP:.0f}x target).",
        "", tabulate([_row(story.before), _row(story.after)],
                     headers=["run", "tokens/s", "rows/s", "step (median)", "token utilization", "final loss",
                              "verdict"], tablefmt="github", disable_numparse=True), "",
        "tokens/s is the median over steps of loss-bearing tokens (padding excluded) per second of step "
        f"time, after the first {DEMO_WARMUP_STEPS} steps of each run (warm-up); token utilization is "
        "loss-bearing tokens over the token slots the model computed.", "",
        "## Step time by phase (mean per step, share)", "",
        tabulate(_shares(story), headers=["phase", "naive", "share", "tuned", "share"], tablefmt="github",
                 disable_numparse=True), "",
        "## The plan the advisor wrote", "", "```json", json.dumps(plan, indent=2), "```", "",
        "## Advice", "", "```", advice.strip(), "```", "",
        "## Findings", "", *(_findings(story.before) + _findings(story.after) or ["- none"]), "",
        "## Plots", "", *plot_lines, "",
        "Each run's own report: [naive/report.md](naive/report.md), [tuned/report.md](tuned/report.md).", "",
    ]
    return "\n".join(lines)


def write_demo_report(story: Story, out: Path) -> Path:
    for label in ("naive", "tuned"):
        write_report(load_session(out / label / "session.json"), out / label)
    advice = (out / "advice.txt").read_text() if (out / "advice.txt").exists() else ""
    plan = json.loads((out / "plan.json").read_text()) if (out / "plan.json").exists() else {}
    (out / "report.md").write_text(render_demo_markdown(story, advice, plan, _plots(out)))
    (out / "summary.json").write_text(json.dumps({
        "speedup_tokens_per_s": story.speedup, "meets_target": story.meets_target,
        "target": REQUIRED_SPEEDUP, "naive": summary_to_dict(story.before.summary),
        "tuned": summary_to_dict(story.after.summary),
        "token_utilization": {"naive": story.before.token_utilization, "tuned": story.after.token_utilization},
    }, indent=2) + "\n")
    return out / "report.md"
