"""Rows shared by the console and markdown renderers (which differ only in table format)."""

from __future__ import annotations

from throughput.analysis.summary import Summary
from throughput.report.format import percent, rate, seconds


def header_lines(s: Summary) -> list[str]:
    status = "PARTIAL run" if s.partial else "run"
    end = f"ended: {s.end}" + (f" ({s.end_detail})" if s.end_detail else "")
    lines = [
        f"throughput {status} {s.run_id} on {s.device_name} ({s.device}), rank {s.rank}/{s.world_size}; {end}",
        f"steps: {s.steps_total} total, {s.warmup_steps} warm-up excluded, {s.steps_measured} measured "
        f"(step rule: {s.step_rule})",
    ]
    if s.micro_steps_per_step is not None and s.micro_steps_per_step != 1:
        lines.append(f"micro-steps per step (gradient accumulation): {s.micro_steps_per_step:.2f}")
    return lines


def phase_rows(s: Summary) -> tuple[list[str], list[list[str]]]:
    has_device = any(p.device_mean_s is not None for p in s.phases)
    head = ["phase", "mean", "p50", "p95", "share"] + (["device mean"] if has_device else [])
    rows = []
    for p in s.phases:
        row = [p.phase, seconds(p.mean_s), seconds(p.p50_s), seconds(p.p95_s), percent(p.share)]
        if has_device:
            row.append(seconds(p.device_mean_s))
        rows.append(row)
    return head, rows


def rate_rows(s: Summary) -> list[list[str]]:
    r = s.rates
    rows = []
    if s.step_time is not None:
        rows.append(["step time (median)", seconds(s.step_time.median_s)])
        rows.append(["step time (p5 .. p95)", f"{seconds(s.step_time.p5_s)} .. {seconds(s.step_time.p95_s)}"])
    if s.warmup_step_time is not None:
        rows.append(["warm-up step time (mean)", seconds(s.warmup_step_time.mean_s)])
    rows.append(["samples/s", rate(r.samples_per_s, "samples/s")])
    rows.append(["tokens/s", rate(r.tokens_per_s, "tokens/s")])
    if r.padding_fraction is not None:
        rows.append(["padding tokens", percent(r.padding_fraction)])
    if r.device_busy_share is not None:
        rows.append(["device busy", percent(r.device_busy_share)])
        rows.append(["GPU idle per step", seconds(r.gpu_idle_s_per_step)])
    if s.mfu is not None and s.mfu.flops_per_step is not None:
        peak = (f" of {rate(s.mfu.peak_flops_per_s, 'FLOP/s')} ({s.mfu.peak_source})"
                if s.mfu.peak_flops_per_s is not None else "")
        rows.append(["MFU", f"{percent(s.mfu.value)}{peak}" if s.mfu.value is not None else f"- ({s.mfu.reason})"])
    return rows


def verdict_lines(s: Summary) -> list[str]:
    v = s.verdict
    lines = [f"verdict: {v.headline}" + (f", phase '{v.phase}'" if v.phase else "")]
    lines += [f"  evidence: {e}" for e in v.evidence]
    lines.append(f"  try: {v.action}")
    return lines


def finding_lines(s: Summary) -> list[str]:
    """One block per hygiene finding: what was seen, the evidence, the change to make."""
    lines: list[str] = []
    for f in s.findings:
        where = f" (step {f.step})" if f.step is not None else ""
        lines.append(f"[{f.kind}]{where} {f.message}")
        lines += [f"  evidence: {e}" for e in f.evidence]
        lines.append(f"  try: {f.action}")
    return lines
