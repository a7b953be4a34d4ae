"""The bottleneck verdict: which part of the step dominates, the evidence, and the change to try.

Thresholds are shares of step wall time (0..1), from ``throughput/thresholds.py``. They are
deliberately simple and stated in the evidence so a user can disagree with them. The compute-bound
advice names a reduced precision only where the run's hardware runs it fast
(``throughput.hardware.precision_options``, the rule the advisor uses too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from throughput.analysis.breakdown import PhaseStats
from throughput.analysis.memory import MemorySummary
from throughput.analysis.optimizer_flags import add_flag_action, multi_tensor_flag
from throughput.hardware import PrecisionOptions, precision_options
from throughput.thresholds import (CHECKPOINT_HEAVY_SHARE, EVAL_HEAVY_SHARE, GPU_IDLE_SHARE, INPUT_BOUND_SHARE,
                                   MEMORY_HEADROOM_MIN_SHARE, OPTIMIZER_BOUND_SHARE, UNATTRIBUTED_SHARE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    kind: str                 # stable id: input_bound, host_bound, compute_bound, ...
    phase: str | None         # the phase that dominates, when one does
    share: float              # that phase's (or group's) share of step time, 0..1
    evidence: tuple[str, ...]
    action: str

    @property
    def headline(self) -> str:
        what = "of device memory in use" if self.kind == "memory_bound" else "of step time"
        return f"{self.kind.replace('_', '-')} ({self.share:.0%} {what})"


def _share(phases: Sequence[PhaseStats], *names: str) -> float:
    return sum(p.share for p in phases if p.phase in names)


def precision_for(device: str, device_name: str, context: Mapping[str, float | int | str | bool]) -> PrecisionOptions:
    """The precision options for a recorded run: the facts its capture recorded (``cpu_fast_bf16``,
    ``cuda_capability``; see capture/device.py), else what the device name tells."""
    cap = context.get("cuda_capability")
    capability = None
    if isinstance(cap, str) and cap.count(".") == 1 and all(p.isdigit() for p in cap.split(".")):
        major, minor = cap.split(".")
        capability = (int(major), int(minor))
    fast = context.get("cpu_fast_bf16")
    return precision_options(device, cuda_capability=capability, device_name=device_name,
                             cpu_fast_bf16=fast if isinstance(fast, bool) else None)


def run_amp(context: Mapping[str, float | int | str | bool], recorded: str = "fp32") -> str:
    """The precision the run's training forwards ran in: the tuned loop's ``amp``, else ``--set amp``
    (ours, entered inside the script's), else the script's own autocast (``script_amp``, read by the
    zero-code hooks), else ``recorded``; ``off`` reads ``fp32``. An autocast the script enters inside the
    model's forward (``autocast_inside``: Accelerate, the HF Trainer) is what ran, whatever ``--set amp``."""
    if context.get("autocast_inside") is True and isinstance(context.get("script_amp"), str):
        return str(context["script_amp"])   # entered inside the model: --set amp could not reach it
    for key in ("amp", "override_amp", "script_amp"):
        value = context.get(key)
        if isinstance(value, str) and value:
            return "fp32" if value == "off" else value
    return "fp32" if recorded == "off" else recorded


def slower_precision(amp: str, device: str, options: PrecisionOptions) -> bool:
    """Whether the run's reduced precision is one this hardware does not run fast: bf16 autocast on a
    CPU without AMX or AVX512-BF16 (emulated), fp16 on any CPU, bf16 on a GPU below compute capability
    8.0. fp16 on a GPU with bf16 tensor cores is as fast as bf16 (not slower). False for fp32 and where
    the hardware facts are unknown."""
    if amp == "fp32" or any(note.startswith(("precision not suggested", "bf16 not suggested"))
                            for note in options.left_out):
        return False
    if device == "cuda" and amp == "fp16":
        return False
    return amp not in options.candidates


def take_autocast_out(amp: str, context: Mapping[str, float | int | str | bool]) -> str:
    """How to train without the run's slow ``amp`` autocast, as it was entered."""
    if context.get("autocast_inside") is True:
        return (f"train without {amp} autocast: it is entered inside the model's forward, where --set amp=fp32 "
                "cannot reach it (Accelerate: mixed_precision='no'; HF Trainer: bf16=False / fp16=False); "
                "measure the run with it off (fp32 numerics again)")
    return (f"train without {amp} autocast: measure it with --set amp=fp32, then take the script's "
            "torch.autocast out (fp32 numerics again)")


def verdict(phases: Sequence[PhaseStats], device: str = "cpu", device_busy_share: float | None = None,
            context: Mapping[str, float | int | str | bool] | None = None,
            memory: MemorySummary | None = None, device_name: str = "") -> Verdict:
    """Name the bottleneck. ``context`` may carry facts seen at capture (``num_workers``,
    ``pin_memory``, ``optimizer`` class, ``fused``, the hardware facts) that sharpen the advice;
    ``memory`` (CUDA) the allocator's retries and the headroom left at its peak."""
    ctx = dict(context or {})
    if not phases:
        return Verdict(kind="no_steps", phase=None, share=0.0, evidence=("no training steps were measured",),
                       action="check that the script trains (calls backward and optimizer.step)")
    data = _share(phases, "data")
    if data >= INPUT_BOUND_SHARE:
        return _input_bound(data, device, ctx)
    tight = _memory_bound(memory) if device == "cuda" else None
    if tight is not None:
        return tight
    if device == "cuda" and device_busy_share is not None and 1 - device_busy_share >= GPU_IDLE_SHARE:
        idle = 1 - device_busy_share
        return Verdict(kind="host_bound", phase=None, share=idle,
                       evidence=(f"GPU idle {idle:.0%} of step time (>= {GPU_IDLE_SHARE:.0%})",),
                       action="larger batch, CUDA graphs or torch.compile(mode='reduce-overhead'); "
                              "remove .item()/print sync points from the loop")
    optimizer = _share(phases, "optimizer")
    if optimizer >= OPTIMIZER_BOUND_SHARE:
        opt = str(ctx.get("optimizer", "the optimizer"))
        return Verdict(kind="optimizer_bound", phase="optimizer", share=optimizer,
                       evidence=(f"optimizer {optimizer:.0%} of step time (>= {OPTIMIZER_BOUND_SHARE:.0%})",
                                 f"optimizer: {opt}"),
                       action=_optimizer_action(str(ctx.get("optimizer", "")), device, ctx))
    evals = _share(phases, "eval")
    if evals >= EVAL_HEAVY_SHARE:
        return Verdict(kind="eval_heavy", phase="eval", share=evals,
                       evidence=(f"evaluation {evals:.0%} of step time (>= {EVAL_HEAVY_SHARE:.0%})",),
                       action="evaluate less often or on a subset, under torch.inference_mode()")
    ckpt = _share(phases, "checkpoint")
    if ckpt >= CHECKPOINT_HEAVY_SHARE:
        return Verdict(kind="checkpoint_heavy", phase="checkpoint", share=ckpt,
                       evidence=(f"checkpointing {ckpt:.0%} of step time (>= {CHECKPOINT_HEAVY_SHARE:.0%})",),
                       action="checkpoint less often (see `throughput advise` for the Young/Daly cadence) "
                              "or save asynchronously")
    other = _share(phases, "other")
    if other >= UNATTRIBUTED_SHARE:
        return Verdict(kind="unattributed", phase="other", share=other,
                       evidence=(f"{other:.0%} of step time is outside every phase",),
                       action="wrap the remaining work in prof.phase(...) or run with --py-spy to see it")
    compute = _share(phases, "forward", "backward", "h2d")
    top = max((p for p in phases if p.phase != "other"), key=lambda p: p.share, default=phases[0])
    opts = precision_for(device, device_name, ctx)
    amp = run_amp(ctx)
    evidence = [f"forward+backward {compute:.0%} of step time", f"data wait {data:.0%}"]
    larger = "a larger batch (changes the global batch: retune the learning rate)"
    if slower_precision(amp, device, opts):
        evidence.append(f"the training forward runs {amp} autocast, which this hardware does not run fast: "
                        + "; ".join(opts.left_out))
        return Verdict(kind="compute_bound", phase=top.phase, share=compute, evidence=tuple(evidence),
                       action=take_autocast_out(amp, ctx) + "; or torch.compile")
    if amp == "fp32" and opts.reduced is not None:
        scaler = " with a GradScaler" if opts.reduced == "fp16" else ""
        action = (f"{opts.reduced} autocast{scaler} (torch.autocast(device_type, dtype=torch."
                  f"{'bfloat16' if opts.reduced == 'bf16' else 'float16'})), torch.compile, or {larger}")
    else:
        action = f"torch.compile or {larger}"
    if amp == "fp32":
        evidence += list(opts.left_out)
    return Verdict(kind="compute_bound", phase=top.phase, share=compute, evidence=tuple(evidence), action=action)


def _input_bound(data: float, device: str, ctx: dict[str, float | int | str | bool]) -> Verdict:
    evidence = [f"waiting for batches {data:.0%} of step time (>= {INPUT_BOUND_SHARE:.0%})"]
    actions = []
    sets = []  # the same change as `throughput profile --set` overrides, to measure before editing
    workers = ctx.get("num_workers")
    if workers is not None:
        evidence.append(f"DataLoader num_workers={workers}")
        actions.append(f"raise DataLoader num_workers (now {workers}; try the number of CPU cores)")
        sets.append("num_workers=N")
    else:
        actions.append("use a DataLoader with num_workers > 0")
    if ctx.get("dataset") == "iterable":
        evidence.append("the dataset is an IterableDataset")
        actions.append("but first make its __iter__ yield only this worker's share "
                       "(torch.utils.data.get_worker_info()), or every worker yields every sample")
    if device == "cuda" and ctx.get("pin_memory") is False:
        evidence.append("pin_memory=False on CUDA")
        actions.append("pin_memory=True with .to(device, non_blocking=True)")
        sets.append("pin_memory=true")
    if ctx.get("persistent_workers") is False and isinstance(workers, int) and workers > 0:
        evidence.append("persistent_workers=False (workers restart every epoch)")
        sets.append("persistent_workers=true")
    actions.append("persistent_workers=True; move per-sample work offline if it is constant")
    if sets:
        actions.append("measure it first: throughput profile " + " ".join(f"--set {s}" for s in sets)
                       + " <script>")
    return Verdict(kind="input_bound", phase="data", share=data, evidence=tuple(evidence),
                   action="; ".join(actions))


def _memory_bound(memory: MemorySummary | None) -> Verdict | None:
    """Memory-bound when the caching allocator had to free its cache and retry a cudaMalloc (each retry
    synchronizes the device) or when less than ``MEMORY_HEADROOM_MIN_SHARE`` of the device is left."""
    if memory is None:
        return None
    headroom = memory.headroom_share
    retries = memory.alloc_retries or 0
    if retries == 0 and (headroom is None or headroom >= MEMORY_HEADROOM_MIN_SHARE):
        return None
    evidence = []
    if retries:
        evidence.append(f"the CUDA caching allocator retried {retries} allocation(s) after freeing its cache "
                        "(each retry synchronizes the device)")
    if headroom is not None:
        evidence.append(f"headroom {headroom:.1%} of device memory at the allocator's peak "
                        f"(memory-bound below {MEMORY_HEADROOM_MIN_SHARE:.0%})")
    return Verdict(kind="memory_bound", phase=None, share=1.0 - headroom if headroom is not None else 1.0,
                   evidence=tuple(evidence),
                   action="lower the peak: a smaller micro-batch with gradient accumulation, activation "
                          "checkpointing, bf16 autocast; or set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True "
                          "to cut fragmentation")


def _optimizer_action(opt: str, device: str, ctx: Mapping[str, float | int | str | bool]) -> str:
    """What to try for an optimizer-bound run, from what it recorded: the multi-tensor flag that would
    change how its optimizer steps (``optimizer_flags``, none it already uses), and no gradient
    accumulation where several optimizers took turns on objectives of their own (a GAN: a larger batch
    per update changes the game, not only the speed)."""
    parts = []
    flag = multi_tensor_flag(device, ctx)
    if flag is not None:
        caveat = "" if device == "cuda" else " (on a CPU foreach often gains little: measure it)"
        parts.append(add_flag_action(flag, opt) + caveat)
    if ctx.get("objectives_alternate") is not True:
        parts.append("step less often with gradient accumulation (a larger effective batch: retune the learning rate)")
    return "; or ".join(parts) or "profile the optimizer step (--ops) to see which of its operations dominate"
