"""What the zero-code run tells the session when the hooks come off: step rule, context and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from throughput.capture.overrides import Overrides
from throughput.capture.profiler import Profiler
from throughput.session.records import StepRule


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFacts:
    """What the hooks counted over the run, for the notes that explain it."""

    steps_by_rule: Mapping[StepRule, int]
    optimizers_created: int
    backward_calls: int
    optimizer_names: tuple[str, ...]
    clip_seen: bool
    overrides: Overrides = field(default_factory=Overrides)
    loaders_built: int = 0
    overrides_applied: Mapping[str, int] = field(default_factory=dict)   # loader key -> loaders


def record_outcome(prof: Profiler, facts: RunFacts) -> None:
    """Set the profiler's step rule and add the notes and context events that explain the run."""
    by_opt, by_bwd = facts.steps_by_rule[StepRule.OPTIMIZER], facts.steps_by_rule[StepRule.BACKWARD]
    if by_opt or (facts.optimizers_created and not by_bwd):
        prof.step_rule = StepRule.OPTIMIZER
        names = ", ".join(facts.optimizer_names) or "torch.optim optimizer"
        prof.add_note(f"step rule: one step per {names}.step() (optimizer updates)")
    else:
        prof.step_rule = StepRule.BACKWARD
        prof.add_note("step rule: no torch.optim optimizer was seen, so each backward() call ends a step "
                      "(a manual parameter update after backward counts at the start of the next step)")
    if by_opt and by_bwd:
        prof.add_note(f"{by_bwd} step(s) were counted by backward() before the first optimizer existed")
    if facts.optimizers_created and not by_opt and facts.backward_calls:
        prof.add_note(f"backward() ran {facts.backward_calls} time(s) but optimizer.step() never did: "
                      "no optimizer update, so no step, was recorded (a step compiled by torch.compile "
                      "runs as a graph and is not seen)")
    if len(facts.optimizer_names) > 1:
        prof.add_note(f"several optimizers stepped ({', '.join(facts.optimizer_names)}): a step ends at each "
                      "update of the first one; the others count in the optimizer phase")
    if facts.backward_calls or by_opt:
        prof.event("context", "gradient clipping", grad_clipping=facts.clip_seen)
    _note_overrides(prof, facts)


def _note_overrides(prof: Profiler, facts: RunFacts) -> None:
    overrides = facts.overrides
    if overrides.empty:
        return
    parts = []
    for key, value in overrides.as_dict().items():
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        if key in ("amp", "tf32"):
            parts.append(f"{key}={shown}")
        else:
            parts.append(f"{key}={shown} on {facts.overrides_applied.get(key, 0)} of {facts.loaders_built} "
                         "DataLoader(s)")
    prof.add_note("overrides applied: " + "; ".join(parts))
    prof.event("context", "overrides", **{f"override_{k}": v for k, v in overrides.as_dict().items()})
