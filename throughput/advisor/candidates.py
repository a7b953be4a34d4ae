"""From the search's result to the changes worth measuring alone: one candidate per knob group (torch-free).

The search ends on a configuration; the recommendations are the differences from where the user's run
started, grouped so that each group is one thing a user would change: the loader (workers, their
prefetch depth and persistence), the precision (with TF32 on CUDA), the batch (micro-batch, with the
accumulation that keeps the global batch where the target can take it), and each on/off candidate.
A group that alters the training (a script's global batch; workers on a stream whose split could not be
confirmed) says so and what else must change; ``confirm.py`` then measures each group alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from throughput.advisor.confirm import Candidate
from throughput.finding import Setting, as_int
from throughput.knobs import KNOBS, show

LOADER = ("num_workers", "prefetch_factor", "persistent_workers")
# Knobs whose change to training a plan may carry, with the change said in its notes: packing keeps the
# per-token loss (the loop normalizes by tokens) and the documents; only how many fit in a step moves.
PLAN_ACCEPTS_CHANGES = frozenset({"packing"})


def plan_may_carry(settings: Mapping[str, Setting], changes_training: str | None) -> bool:
    """Whether a change may enter the plan: one that keeps the training as it is, or packing (said)."""
    return changes_training is None or set(settings) <= PLAN_ACCEPTS_CHANGES


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """What the user's run does now. ``accum``: micro-batches per optimizer step in a script (the script's
    own; it cannot be changed from outside). ``kind``: script | recipe. ``stream_caveat``: set when the
    run reads an IterableDataset whose split between workers could not be confirmed. ``global_batch``:
    samples per optimizer step a script's batch change should keep with a code change (the target
    global batch; None: the script's own, micro-batch x ``accum``)."""

    kind: str
    config: Mapping[str, Setting]
    accum: int = 1
    stream_caveat: str | None = None
    global_batch: int | None = None


def candidates(start: Start, tuned: Mapping[str, Setting], evidence: Mapping[str, tuple[str, ...]],
               extras: tuple[str, ...] = ()) -> list[Candidate]:
    """The changes from ``start.config`` to ``tuned``, one candidate per group (see the module doc).
    ``evidence``: the search's measurements per knob (``probe.<knob>`` findings)."""
    out = [c for c in (_loader(start, tuned, evidence), _precision(start, tuned, evidence),
                       _batch(start, tuned, evidence), _device(start, tuned, out_amp=_changed(start, tuned, "amp")))
           if c is not None]
    for key in extras:
        if tuned.get(key) and not start.config.get(key):
            out.append(Candidate(rule_id=f"probe.{key}", title=f"Turn on {key}", settings={key: True},
                                 evidence=evidence.get(key, ())))
    return out


def _changed(start: Start, tuned: Mapping[str, Setting], key: str) -> bool:
    return key in tuned and tuned[key] != start.config.get(key, _default(key))


def _default(key: str) -> Setting:
    defaults: dict[str, Setting] = {"num_workers": 0, "prefetch_factor": 2, "persistent_workers": False, "amp": "fp32",
                                    "activation_checkpointing": False, "grad_accum": 1, "tf32": False,
                                    "pin_memory": False}
    return defaults.get(key)


def _loader(start: Start, tuned: Mapping[str, Setting], evidence: Mapping[str, tuple[str, ...]]) -> Candidate | None:
    if not any(_changed(start, tuned, k) for k in ("num_workers", "prefetch_factor")):
        return None
    workers = as_int(tuned.get("num_workers") or 0)
    settings: dict[str, Setting] = {"num_workers": workers}
    if workers and tuned.get("prefetch_factor") not in (None, 2):
        settings["prefetch_factor"] = tuned["prefetch_factor"]
    if workers and not start.config.get("persistent_workers"):
        settings["persistent_workers"] = True
    title = "DataLoader " + ", ".join(f"{k}={v if v is None else show(v)}" for k, v in settings.items())
    return Candidate(rule_id="probe.num_workers", title=title, settings=settings,
                     evidence=evidence.get("num_workers", ()) + evidence.get("prefetch_factor", ()),
                     changes_training=start.stream_caveat)


def _precision(start: Start, tuned: Mapping[str, Setting], evidence: Mapping[str, tuple[str, ...]]) -> Candidate | None:
    if not _changed(start, tuned, "amp"):
        return None
    settings: dict[str, Setting] = {"amp": tuned["amp"]}
    if tuned.get("tf32"):
        settings["tf32"] = True
    scaler = " with a GradScaler" if tuned["amp"] == "fp16" else ""
    code = None
    if tuned["amp"] == "fp16" and start.kind == "script":   # the zero-code autocast adds no GradScaler
        code = KNOBS["amp"].code_change("float16")
    if tuned["amp"] == "fp32":   # the script's own autocast, measured without it
        return Candidate(rule_id="probe.amp", title=f"Train without the script's {start.config.get('amp')} autocast",
                         settings=settings, evidence=evidence.get("amp", ()),
                         code_change="take the script's torch.autocast(...) out of its training step",
                         changes_training="the numerics: back to fp32 (check the loss curve)")
    title = f"{tuned['amp']} autocast{scaler}" + (" and TF32" if tuned.get("tf32") else "")
    return Candidate(rule_id="probe.amp", title=title,
                     settings=settings, evidence=evidence.get("amp", ()), code_change=code,
                     changes_training=("fp16 needs a GradScaler, which a script must add itself (code change), or "
                                       "small gradients underflow" if code else None))


def _batch(start: Start, tuned: Mapping[str, Setting], evidence: Mapping[str, tuple[str, ...]]) -> Candidate | None:
    if not any(_changed(start, tuned, k) for k in ("micro_batch_size", "activation_checkpointing")):
        return None
    micro = as_int(tuned["micro_batch_size"])
    accum = as_int(tuned.get("grad_accum") or 1)
    ev = evidence.get("micro_batch_size", ()) + evidence.get("activation_checkpointing", ())
    ac = bool(tuned.get("activation_checkpointing")) and _changed(start, tuned, "activation_checkpointing")
    if start.kind == "recipe":
        settings: dict[str, Setting] = {"micro_batch_size": micro, "grad_accum": accum}
        if ac:
            settings["activation_checkpointing"] = True
        now = as_int(start.config.get("micro_batch_size") or 0) * as_int(start.config.get("grad_accum") or 1)
        same = now == micro * accum
        return Candidate(rule_id="probe.micro_batch_size", title=f"Micro-batch {micro} x {accum} accumulation "
                         f"steps ({'same global batch' if same else f'global batch {now} -> {micro * accum}'})"
                         + (" with activation checkpointing" if ac else ""), settings=settings, evidence=ev,
                         changes_training=None if same else (f"the global batch: {now} -> {micro * accum} samples "
                                                             "per optimizer step; scale the learning rate with it"))
    own = as_int(start.config.get("micro_batch_size") or 0) * start.accum
    return _script_batch(start, micro, start.global_batch or own, ev)


def _script_batch(start: Start, micro: int, target: int, ev: tuple[str, ...]) -> Candidate:
    """A script takes the batch size from outside but not the accumulation: applied alone, the global
    batch moves from batch x accum to micro x accum. The code change that keeps ``target`` is shown."""
    batch = as_int(start.config.get("micro_batch_size") or 0)
    now, then = batch * start.accum, micro * start.accum
    keep = target // micro if target % micro == 0 else None
    code = None
    if keep is not None and keep != start.accum:
        code = (f"# keep {target} samples per optimizer step: DataLoader(batch_size={micro}) and\n"
                + KNOBS["grad_accum"].code_change(keep))
    return Candidate(rule_id="probe.micro_batch_size", title=f"DataLoader batch_size {micro} (global batch "
                     f"{now} -> {then} when applied alone)", settings={"micro_batch_size": micro}, evidence=ev,
                     code_change=code,
                     changes_training=(f"the global batch: {now} -> {then} samples per optimizer step (the script "
                                       f"accumulates {start.accum} micro-batch(es)); scale the learning rate with it"
                                       + (f", or keep {target} with the code change" if code else "")))


def _device(start: Start, tuned: Mapping[str, Setting], out_amp: bool) -> Candidate | None:
    """Settings the search applies without a trial on CUDA (pinned memory; TF32 on Ampere or newer)."""
    keys = [k for k in ("pin_memory", "tf32") if tuned.get(k) and _changed(start, tuned, k)
            and not (k == "tf32" and out_amp)]
    if not keys:
        return None
    settings: dict[str, Setting] = {k: True for k in keys}
    return Candidate(rule_id="probe.device", title=" and ".join(
        {"pin_memory": "pinned host memory", "tf32": "TF32 matmuls"}[k] for k in keys), settings=settings,
        evidence=("set by the hardware rule (hardware.precision_options): CUDA, compute capability >= 8.0 for TF32",))


def plan_settings(cands: list[Candidate]) -> dict[str, Setting]:
    """The settings of every candidate the plan may carry: the whole plan, measured as one."""
    out: dict[str, Setting] = {}
    for c in cands:
        if plan_may_carry(c.settings, c.changes_training):
            out.update(c.settings)
    return out
