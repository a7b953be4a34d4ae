"""Rules over a saved session's summary: each a small function with a stable id (torch-free).

A rule reads a ``RuleInput`` (the Summary plus facts recorded at capture) and returns a ``Finding`` or
None. Rules never run code; the measured probes live in ``throughput.advisor.search``. Thresholds come
from ``throughput/thresholds.py`` (shares of step wall time, 0..1) and are stated in the evidence so a
user can disagree with them. Precision advice comes from ``throughput.hardware.precision_options``, the
same rule the verdict and the search use.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Final, Mapping, Sequence

from throughput.advisor.checkpoint import (FAILURE_RATE_SOURCE, CheckpointPlan, expected_wall_time, mtbf_from_gpus,
                                           plan_checkpoints)
from throughput.analysis.findings import ITERABLE_WORKERS_CAVEAT
from throughput.analysis.optimizer_flags import add_flag_action, multi_tensor_flag
from throughput.analysis.summary import Summary, capture_context, summarize
from throughput.analysis.verdict import precision_for, run_amp, slower_precision, take_autocast_out
from throughput.finding import Finding, rank
from throughput.hardware import PrecisionOptions
from throughput.session.session import Session
from throughput.thresholds import (CADENCE_MIN_SAVING, COMPUTE_SHARE, DATA_WAIT_WORTH_WORKERS, EVAL_HEAVY_SHARE,
                                   GPU_IDLE_SHARE, H2D_SHARE, OPTIMIZER_SHARE, PACKING_MIN_GAIN, PADDING_FRACTION)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleInput:
    """What a rule may read: the summary, capture context (num_workers, pin_memory, optimizer, amp...)
    and the checkpoint spans' durations (seconds)."""

    summary: Summary
    context: Mapping[str, float | int | str | bool] = field(default_factory=dict)
    dtype: str = "fp32"
    checkpoint_spans_s: tuple[float, ...] = ()
    cpu_count: int = 1

    @property
    def precision(self) -> PrecisionOptions:
        """What this run's hardware runs fast (recorded at capture; see hardware.precision_options)."""
        return precision_for(self.summary.device, self.summary.device_name, self.context)


def rule_input(session: Session) -> RuleInput:
    ckpt = tuple(s.duration_s for s in session.spans if s.phase == "checkpoint" and s.depth == 0)
    ctx = capture_context(session)
    dtype = run_amp(ctx, session.info.dtype)
    cores = ctx.get("cpu_count")   # the run's machine (recorded since 2026-12-03), else this one's
    return RuleInput(summary=summarize(session), context=ctx, dtype=dtype, checkpoint_spans_s=ckpt,
                     cpu_count=cores if isinstance(cores, int) and cores > 0 else os.cpu_count() or 1)


def _share(s: Summary, *names: str) -> float:
    return sum(p.share for p in s.phases if p.phase in names)


def _hidden_gain(share: float) -> float:
    """Relative throughput gain when a phase taking ``share`` of the step is hidden entirely."""
    return share / (1.0 - share) if share < 1.0 else 1.0


def no_steps(x: RuleInput) -> Finding | None:
    if x.summary.steps_total > 0:
        return None
    return Finding(rule_id="steps.none", title="No training steps were seen", confidence="high",
                   evidence=(f"run ended: {x.summary.end}" + (f" ({x.summary.end_detail})" if x.summary.end_detail
                                                              else ""), "0 optimizer steps and 0 backward calls"),
                   expected_gain=None,
                   action="make sure the script reaches loss.backward() and optimizer.step() within --max-steps")


def data_workers(x: RuleInput) -> Finding | None:
    share = _share(x.summary, "data")
    if share < DATA_WAIT_WORTH_WORKERS:
        return None
    now = x.context.get("num_workers")
    now_n = int(now) if isinstance(now, (int, float)) else 0
    suggested = workers_to_hide(share, now_n, x.cpu_count)
    iterable = x.context.get("dataset") == "iterable"
    return Finding(rule_id="data.num_workers", title=f"Raise DataLoader num_workers to {suggested}",
                   evidence=(f"waiting for batches {share:.0%} of step time (>= {DATA_WAIT_WORTH_WORKERS:.0%})",
                             f"num_workers={now if now is not None else 'unknown'}, {x.cpu_count} CPU cores"),
                   expected_gain=workers_gain(share, now_n, suggested), confidence="medium",
                   action=f"DataLoader(..., num_workers={suggested})",
                   changes_training=ITERABLE_WORKERS_CAVEAT if iterable else None,
                   settings={"num_workers": suggested})


def workers_to_hide(wait_share: float, workers_now: int, cpu_count: int) -> int:
    """How many DataLoader workers to suggest: as many as hide the wait (``workers_gain``'s model: a
    batch's loading split across them takes no longer than the rest of the step), at most the run's
    cores, and at least one more than now. Not cores - 1: a data-bound main process waits, its core idle
    (on 2 cores, 1 worker behind a 96% wait gains 4%, 2 workers 108%, measured +100%)."""
    rest = 1.0 - wait_share
    per_batch = wait_share if workers_now == 0 else float(workers_now)
    needed = math.ceil(per_batch / rest) if rest > 0 else cpu_count
    return max(workers_now + 1, min(max(1, cpu_count), needed))


def workers_gain(wait_share: float, workers_now: int, workers_new: int) -> float:
    """Relative throughput gain of ``workers_new`` DataLoader workers where the step waits
    ``wait_share`` of its time for batches with ``workers_now``. Per unit of today's step: the rest of
    the step takes ``1 - wait_share``; one worker makes a batch in ``wait_share`` (no workers: the main
    process loads it, in the wait) or in ``workers_now`` (data-bound with workers: each delivers one
    batch per ``workers_now`` steps). Workers overlap loading with the step, so the new step takes the
    longer of the rest and a batch's loading split across the new workers: one worker hides a data wait
    of 95% behind a 5% step, which gains 5%, not the 1,900% of a wait that vanished."""
    rest = 1.0 - wait_share
    per_batch = wait_share if workers_now == 0 else float(workers_now)
    new_step = max(rest, per_batch / max(1, workers_new))
    return 1.0 / new_step - 1.0 if new_step > 0 else 0.0


def pin_memory(x: RuleInput) -> Finding | None:
    share = _share(x.summary, "h2d")
    if x.summary.device != "cuda" or x.context.get("pin_memory") is True or share < H2D_SHARE:
        return None
    return Finding(rule_id="data.pin_memory", title="Pin host memory for faster, async copies",
                   evidence=(f"host-to-device copies {share:.0%} of step time (>= {H2D_SHARE:.0%})",
                             f"pin_memory={x.context.get('pin_memory', 'unknown')}"),
                   expected_gain=_hidden_gain(share) / 2, confidence="medium",
                   action="DataLoader(..., pin_memory=True) and batch.to(device, non_blocking=True)",
                   settings={"pin_memory": True})


def persistent_workers(x: RuleInput) -> Finding | None:
    workers = x.context.get("num_workers")
    if not isinstance(workers, (int, float)) or workers <= 0 or x.context.get("persistent_workers") is not False:
        return None
    return Finding(rule_id="data.persistent_workers", title="Keep loader workers alive across epochs",
                   evidence=(f"num_workers={workers} with persistent_workers=False: workers restart every "
                             "epoch (their start-up shows as data wait at each epoch's first steps)",),
                   expected_gain=None, confidence="low",
                   action="DataLoader(..., persistent_workers=True)", settings={"persistent_workers": True})


def precision(x: RuleInput) -> Finding | None:
    """Reduced precision where the hardware runs it natively (bf16: CUDA >= 8.0 or a CPU with AMX /
    AVX512-BF16; fp16 with a GradScaler on older GPUs). ``precision_notes`` says why others are left out."""
    compute = _share(x.summary, "forward", "backward")
    opts = x.precision
    if x.dtype != "fp32" or compute < COMPUTE_SHARE or opts.reduced is None:
        return None
    evidence = [f"forward+backward {compute:.0%} of step time in fp32 (>= {COMPUTE_SHARE:.0%})"]
    if x.summary.device == "cuda" and opts.reduced == "bf16":
        evidence.append(f"{x.summary.device_name} has bf16 and TF32 tensor cores (compute capability >= 8.0)")
        return Finding(rule_id="precision.bf16", title="Train in bf16 autocast with TF32 matmuls",
                       evidence=tuple(evidence), expected_gain=compute, confidence="medium",
                       action="torch.autocast('cuda', dtype=torch.bfloat16); "
                              "torch.backends.cuda.matmul.allow_tf32 = True",
                       changes_training="the numerics: bf16 autocast (check the loss curve against fp32)",
                       settings={"amp": "bf16", "tf32": True})
    if x.summary.device == "cuda":
        evidence.append(f"{x.summary.device_name}: no bf16 tensor cores, fp16 needs a GradScaler")
        return Finding(rule_id="precision.fp16", title="Train in fp16 autocast with a GradScaler",
                       evidence=tuple(evidence), expected_gain=compute / 2, confidence="low",
                       action="torch.autocast('cuda', dtype=torch.float16) + torch.amp.GradScaler('cuda')",
                       changes_training="the numerics: fp16 needs a GradScaler in the script (the code change), "
                                        "or small gradients underflow to zero",
                       settings={"amp": "fp16"})
    evidence.append(f"{x.summary.device_name} runs bf16 natively (AMX or AVX512-BF16); the gain on a CPU varies "
                    "with the model: measure it (throughput advise script.py)")
    return Finding(rule_id="precision.bf16", title="Try bf16 autocast (this CPU runs bf16 natively)",
                   evidence=tuple(evidence), expected_gain=None, confidence="low",
                   action="torch.autocast('cpu', dtype=torch.bfloat16)",
                   changes_training="the numerics: bf16 autocast (check the loss curve against fp32)",
                   settings={"amp": "bf16"})


def slow_precision(x: RuleInput) -> Finding | None:
    """The run's own reduced precision where this hardware does not run it fast (``slower_precision``):
    bf16 autocast on a CPU without AMX or AVX512-BF16 runs its matmuls emulated, several times slower
    than fp32. Not estimated (how much slower depends on the model's matmuls): measured by
    ``--set amp=fp32``, which turns autocast off around the training forward."""
    compute = _share(x.summary, "forward", "backward")
    opts = x.precision
    if compute < COMPUTE_SHARE or not slower_precision(x.dtype, x.summary.device, opts):
        return None
    inside = x.context.get("autocast_inside") is True
    where = "the script's torch.autocast" if x.context.get("script_amp") == x.dtype else f"amp={x.dtype}"
    return Finding(rule_id="precision.slow", title=f"Train without {x.dtype} autocast on this hardware",
                   evidence=(f"forward+backward {compute:.0%} of step time in {x.dtype} autocast "
                             f"(>= {COMPUTE_SHARE:.0%})", *opts.left_out,
                             "not estimated: " + ("entered inside the model's forward, where --set amp=fp32 "
                                                  "cannot reach it" if inside else "measure it with --set amp=fp32")),
                   expected_gain=None, confidence="medium",
                   action=take_autocast_out(x.dtype, x.context) if inside
                   else f"take {where} out (measure first: --set amp=fp32)",
                   changes_training="the numerics: back to fp32 (check the loss curve; usually closer to the "
                                    "fp32 reference, not further)",
                   settings={} if inside else {"amp": "fp32"})


def precision_notes(x: RuleInput) -> tuple[str, ...]:
    """Why precision options were left out for this run's hardware (when precision would matter)."""
    compute = _share(x.summary, "forward", "backward")
    return x.precision.left_out if x.dtype == "fp32" and compute >= COMPUTE_SHARE else ()


def fused_optimizer(x: RuleInput) -> Finding | None:
    """The script's own optimizer class with the multi-tensor flag that would change how it steps
    (``analysis.optimizer_flags``). On a CPU the gain of foreach is often small and is not estimated:
    measure it."""
    share = _share(x.summary, "optimizer")
    cuda = x.summary.device == "cuda"
    flag = multi_tensor_flag(x.summary.device, x.context)
    if share < OPTIMIZER_SHARE or flag is None:
        return None
    name = str(x.context.get("optimizer", ""))
    evidence = [f"optimizer {share:.0%} of step time (>= {OPTIMIZER_SHARE:.0%})", f"optimizer: {name or 'unknown'}"]
    if not cuda:
        evidence.append("on a CPU foreach often gains little: not estimated, measure it")
    return Finding(rule_id="optimizer.fused", title=f"Use a multi-tensor optimizer ({flag})",
                   evidence=tuple(evidence), expected_gain=_hidden_gain(share) / 2 if cuda else None,
                   confidence="low", action=add_flag_action(flag, name))


#: What packing changes besides speed (said with every packing recommendation: the data's layout moves).
PACKING_CHANGES = ("the batches' layout: each row holds several documents (positions and attention restart per "
                   "document, the loss is normalized per token as before), so a step carries more real tokens "
                   "than the padded rows did; scale the learning rate or the number of steps if you keep the "
                   "tokens per run fixed")


def padding_packing(x: RuleInput) -> Finding | None:
    """Pack rows instead of padding them. The gain counts only the compute the padding costs: forward,
    backward and copy time shrink by the padding share (their cost is linear in the tokens computed),
    the rest of the step does not."""
    waste = x.summary.rates.padding_fraction
    if waste is None or waste < PADDING_FRACTION:
        return None
    compute = _share(x.summary, "forward", "backward", "h2d")
    return Finding(rule_id="data.packing", title="Pack sequences instead of padding them",
                   evidence=(f"padding is {waste:.0%} of tokens (>= {PADDING_FRACTION:.0%})",
                             f"forward+backward {compute:.0%} of step time: packing saves its padded share "
                             f"({compute * waste:.0%} of the step)"),
                   expected_gain=_saved_gain(compute * waste), confidence="medium",
                   action="build packed rows with throughput.packing (docs/packing.md; in a script, a code "
                          "change: per-document positions and an attention mask that stops at document "
                          "boundaries), or --set packing=true for a recipe",
                   settings={"packing": True}, changes_training=PACKING_CHANGES)


def _saved_gain(saved_share: float) -> float:
    """Relative throughput gain when ``saved_share`` of the step's time is no longer spent."""
    return saved_share / (1.0 - saved_share) if saved_share < 1.0 else 1.0


def padding_waste(lengths: Sequence[int], micro_batch_size: int) -> float:
    """Share of computed tokens that are padding when consecutive rows are padded to the longest row of
    their micro-batch (the usual collate), 0..1."""
    padded = real = 0
    for i in range(0, len(lengths), micro_batch_size):
        chunk = lengths[i:i + micro_batch_size]
        padded += max(chunk) * len(chunk)
        real += sum(chunk)
    return 1.0 - real / padded if padded else 0.0


def packing_utilization(lengths: Sequence[int], row_len: int) -> tuple[float, str]:
    """(utilization 0..1, how it was computed): throughput.packing's planner when installed, else
    first-fit decreasing (rows of ``row_len``; longer pieces are split)."""
    try:
        from throughput.packing import pack_lengths
        return float(pack_lengths(list(lengths), row_len).stats.utilization), "throughput.packing (best-fit decreasing)"
    except ImportError:
        pass
    free: list[int] = []
    for n in sorted((min(n, row_len) for n in lengths), reverse=True):
        slot = next((i for i, f in enumerate(free) if f >= n), None)
        if slot is None:
            free.append(row_len - n)
        else:
            free[slot] -= n
    used = sum(min(n, row_len) for n in lengths)
    return (used / (len(free) * row_len) if free else 0.0), "first-fit decreasing"


def packing_finding(lengths: Sequence[int], micro_batch_size: int) -> Finding | None:
    """Packing, from observed sequence lengths: measured padding waste at this micro-batch and the
    utilization the packer reaches on the same lengths (rows as long as the longest sequence)."""
    if not lengths or micro_batch_size < 1:
        return None
    waste = padding_waste(lengths, micro_batch_size)
    if waste < PADDING_FRACTION:
        return None
    row_len = max(lengths)
    util, how = packing_utilization(lengths, row_len)
    gain = util / (1.0 - waste) - 1.0       # real tokens per computed token: packed vs padded
    if gain < PACKING_MIN_GAIN:
        return None
    return Finding(rule_id="data.packing", title="Pack sequences instead of padding them",
                   evidence=(f"padding is {waste:.0%} of computed tokens at micro-batch {micro_batch_size} "
                             f"({len(lengths)} observed lengths, mean {sum(lengths) / len(lengths):.1f}, "
                             f"max {row_len})",
                             f"packing them into rows of {row_len} reaches {util:.1%} utilization ({how})"),
                   expected_gain=gain, confidence="medium",
                   action="build packed rows (throughput.packing, docs/packing.md), then --set packing=true",
                   settings={"packing": True}, changes_training=PACKING_CHANGES)


def eval_heavy(x: RuleInput) -> Finding | None:
    share = _share(x.summary, "eval")
    if share < EVAL_HEAVY_SHARE:
        return None
    return Finding(rule_id="eval.heavy", title="Evaluate less often or on a subset",
                   evidence=(f"evaluation {share:.0%} of step time (>= {EVAL_HEAVY_SHARE:.0%})",),
                   expected_gain=_hidden_gain(share) / 2, confidence="medium",
                   action="run eval every k steps under torch.inference_mode()")


def gpu_idle(x: RuleInput) -> Finding | None:
    busy = x.summary.rates.device_busy_share
    if busy is None or 1.0 - busy < GPU_IDLE_SHARE:
        return None
    idle = 1.0 - busy
    return Finding(rule_id="host.gpu_idle", title="The GPU waits on the host: larger micro-batch or fewer syncs",
                   evidence=(f"GPU idle {idle:.0%} of step time (>= {GPU_IDLE_SHARE:.0%})",),
                   expected_gain=_hidden_gain(idle) / 2, confidence="low",
                   action="raise the micro-batch (throughput advise script.py measures the largest that fits); "
                          "remove .item()/print from the step; torch.compile(mode='reduce-overhead')")


def checkpoint_cadence(x: RuleInput) -> Finding | None:
    return cadence_finding(x)


def job_mtbf(device: str, num_gpus: int, mtbf_s: float | None) -> float | None:
    """The job's mean time between failures: given, or the published per-GPU rate times the GPUs when
    the run used GPUs. None on other hardware: no published rate applies, so ``--mtbf-hours`` must say."""
    if mtbf_s is not None:
        return mtbf_s
    return mtbf_from_gpus(num_gpus) if device == "cuda" else None


MTBF_NOTE: Final = ("checkpoint cadence not computed: the default failure rate is per GPU (Llama 3) and this run "
                    "used no GPU; pass --mtbf-hours (the job's mean time between failures) to get one")


def checkpoint_plan_finding(plan: CheckpointPlan, measured: bool = True, was_off: bool = False) -> Finding:
    """A finding from a computed cadence (the recipe mode measures the save on the real model).
    ``was_off``: the recipe has checkpointing off; the finding says so, and the plan leaves it off."""
    evidence = (f"a checkpoint takes {plan.delta_s:.3g} s ({'measured' if measured else 'given'})",
                f"MTBF {plan.mtbf_s / 3600:.3g} h ({plan.mtbf_source})",
                f"Young interval {plan.young_s:.0f} s, Daly interval {plan.daly_s:.0f} s"
                + (", capped by the max lost work" if plan.capped else ""),
                f"expected loss {plan.lost_fraction:.2%} of wall time ({plan.lost_s_per_day / 60:.1f} min/day: "
                "checkpoint writes + rework after failures)")
    title = f"Checkpoint every {plan.every_steps} steps (Young/Daly)"
    if was_off:
        title = f"Checkpointing is off in this recipe; if you turn it on, every {plan.every_steps} steps (Young/Daly)"
    return Finding(rule_id="checkpoint.cadence", title=title, evidence=evidence, expected_gain=None,
                   confidence="medium", action=f"save a checkpoint every {plan.every_steps} steps",
                   settings={"ckpt_every_steps": plan.every_steps or 1})


def cadence_finding(x: RuleInput, *, num_gpus: int | None = None, delta_s: float | None = None,
                    mtbf_s: float | None = None, max_lost_work_s: float | None = None) -> Finding | None:
    """Young/Daly checkpoint cadence. ``delta_s`` defaults to the mean measured checkpoint span; without
    one (and without a step time) there is nothing to compute, nor without a failure rate for the
    hardware (``job_mtbf``). Given values always yield a finding; the measured-only case reports only
    when the optimum saves more than ``CADENCE_MIN_SAVING`` of wall time over the current cadence."""
    spans = x.checkpoint_spans_s
    st = x.summary.step_time
    delta = delta_s if delta_s is not None else (sum(spans) / len(spans) if spans else None)
    gpus = num_gpus or max(1, x.summary.world_size)
    mtbf = job_mtbf(x.summary.device, gpus, mtbf_s)
    if delta is None or delta <= 0 or st is None or st.median_s <= 0 or mtbf is None:
        return None
    best = plan_checkpoints(delta_s=delta, step_time_s=st.median_s, num_gpus=gpus, mtbf_s=mtbf,
                            max_lost_work_s=max_lost_work_s)
    source = best.mtbf_source if mtbf_s is not None else f"{gpus} GPU(s) x {FAILURE_RATE_SOURCE}"
    evidence = [f"a checkpoint takes {delta:.3g} s ({'given' if delta_s is not None else 'measured'}); "
                f"a step takes {st.median_s:.3g} s",
                f"MTBF {best.mtbf_s / 3600:.3g} h ({source})",
                f"Young interval {best.young_s:.0f} s, Daly interval {best.daly_s:.0f} s"
                + (f", capped at {max_lost_work_s:.0f} s of lost work" if best.capped else "")]
    gain = None
    if spans:
        every_now = max(1, x.summary.steps_total // len(spans))
        lost_now = 1.0 - 1.0 / expected_wall_time(1.0, every_now * st.median_s, delta, best.mtbf_s)
        gain = lost_now - best.lost_fraction
        evidence.append(f"now every ~{every_now} steps: expected loss {lost_now:.2%} of wall time")
        if delta_s is None and gain <= CADENCE_MIN_SAVING:
            return None
    evidence.append(f"at the optimum: expected loss {best.lost_fraction:.2%} of wall time "
                    f"({best.lost_s_per_day / 60:.1f} min/day: checkpoint writes + rework after failures)")
    title = f"Checkpoint every {best.every_steps} steps (Young/Daly)"
    if not spans:
        title = f"This run saved no checkpoint; if it should, every {best.every_steps} steps (Young/Daly)"
    return Finding(rule_id="checkpoint.cadence", title=title, evidence=tuple(evidence), expected_gain=gain,
                   confidence="medium", action=f"save a checkpoint every {best.every_steps} steps",
                   settings={"ckpt_every_steps": best.every_steps or 1})


def page_faults(x: RuleInput) -> Finding | None:
    """The analysis's page-fault finding (thresholds in ``throughput.analysis.faults``), as advice; the
    gain is unknown until ``throughput advise script.py`` measures it (``probe.allocator``)."""
    f = next((f for f in x.summary.findings if f.kind == "page_faults_per_step"), None)
    if f is None:
        return None
    return Finding(rule_id="host.page_faults", title="Keep freed memory in the process (glibc malloc thresholds)",
                   evidence=f.evidence, expected_gain=None, confidence="medium", action=f.action,
                   settings={"malloc_threshold_bytes": _threshold_of(f.action)} if _threshold_of(f.action) else {})


def _threshold_of(action: str) -> int:
    """The N of ``MALLOC_MMAP_THRESHOLD_=N`` in the fault finding's action (0 when absent)."""
    for word in action.split():
        if word.startswith("MALLOC_MMAP_THRESHOLD_="):
            return int(word.split("=", 1)[1])
    return 0


Rule = Callable[[RuleInput], "Finding | None"]
RULES: tuple[Rule, ...] = (no_steps, data_workers, pin_memory, persistent_workers, precision, fused_optimizer,
                           padding_packing, slow_precision, eval_heavy, gpu_idle, checkpoint_cadence, page_faults)


def apply_rules(x: RuleInput, rules: tuple[Rule, ...] = RULES) -> tuple[Finding, ...]:
    """All findings the rules produce, ranked by expected gain weighted by confidence."""
    return rank([f for f in (r(x) for r in rules) if f is not None])
