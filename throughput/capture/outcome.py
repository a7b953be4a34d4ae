"""What the zero-code run tells the session when the hooks come off: step rule, context and notes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

from throughput.session.records import StepRule

if TYPE_CHECKING:
    from throughput.capture.hooks import Instrumentation


def record_outcome(inst: "Instrumentation", steps_by_rule: Mapping[StepRule, int], optimizers_created: int,
                   backward_calls: int, optimizer_names: Sequence[str], clip_seen: bool) -> None:
    """Set the profiler's step rule and add the notes and context events that explain the run."""
    prof = inst.prof
    by_opt, by_bwd = steps_by_rule[StepRule.OPTIMIZER], steps_by_rule[StepRule.BACKWARD]
    if by_opt or (optimizers_created and not by_bwd):
        prof.step_rule = StepRule.OPTIMIZER
        names = ", ".join(optimizer_names) or "torch.optim optimizer"
        prof.add_note(f"step rule: one step per {names}.step() (optimizer updates)")
    else:
        prof.step_rule = StepRule.BACKWARD
        prof.add_note("step rule: no torch.optim optimizer was seen, so each backward() call ends a step "
                      "(a manual parameter update after backward counts at the start of the next step)")
    if by_opt and by_bwd:
        prof.add_note(f"{by_bwd} step(s) were counted by backward() before the first optimizer existed")
    if optimizers_created and not by_opt and backward_calls:
        prof.add_note(f"backward() ran {backward_calls} time(s) but optimizer.step() never did: "
                      "no optimizer update, so no step, was recorded")
    if len(optimizer_names) > 1:
        prof.add_note(f"several optimizers stepped ({', '.join(optimizer_names)}): a step ends at each "
                      "update of the first one; the others count in the optimizer phase")
    if backward_calls or by_opt:
        prof.event("context", "gradient clipping", grad_clipping=clip_seen)
    _note_overrides(inst)


def _note_overrides(inst: "Instrumentation") -> None:
    overrides = inst.overrides
    if overrides.empty:
        return
    prof = inst.prof
    loaders = inst._loaders
    parts = []
    for key, value in overrides.as_dict().items():
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        if key in ("amp", "tf32"):
            parts.append(f"{key}={shown}")
        else:
            parts.append(f"{key}={shown} on {loaders.applied.get(key, 0)} of {loaders.loaders_built} DataLoader(s)")
    prof.add_note("overrides applied: " + "; ".join(parts))
    prof.event("context", "overrides", **{f"override_{k}": v for k, v in overrides.as_dict().items()})
