"""What the zero-code run tells the session when the hooks come off: step rule, context and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from throughput.capture.cycle import CONFIRM
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
    optimizers_stepped: int = 0               # distinct optimizers that updated (capped)
    update_round: tuple[str, ...] = ()         # the learned round of turns, optimizer classes in order
    alternating_steps: int = 0                 # steps with a backward after one of their updates
    relearned_at: tuple[int, ...] = ()         # indexes of steps that held the updates of a new order (capped)
    overrides: Overrides = field(default_factory=Overrides)
    loaders_built: int = 0
    overrides_applied: Mapping[str, int] = field(default_factory=dict)   # loader key -> loaders


def record_outcome(prof: Profiler, facts: RunFacts) -> None:
    """Set the profiler's step rule and add the notes and context events that explain the run."""
    by_opt, by_bwd = facts.steps_by_rule[StepRule.OPTIMIZER], facts.steps_by_rule[StepRule.BACKWARD]
    if by_opt or (facts.optimizers_created and not by_bwd):
        prof.step_rule = StepRule.OPTIMIZER
        if len(facts.update_round) > 1:
            prof.add_note("step rule: one step per round of optimizer updates (optimizer updates)")
        else:
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
    _note_optimizers(prof, facts, by_opt)
    if facts.backward_calls or by_opt:
        prof.event("context", "gradient clipping", grad_clipping=facts.clip_seen)
    _note_overrides(prof, facts)


def _note_optimizers(prof: Profiler, facts: RunFacts, steps: int) -> None:
    """How several optimizers made steps, and whether the loss is one objective among alternating ones."""
    if len(facts.update_round) > 1:
        prof.add_note(f"{len(facts.update_round)} optimizer updates take turns ({' -> '.join(facts.update_round)}): "
                      "a step is one round of them and ends at its last update; its loss and micro-steps are "
                      "those before the round's first update")
    elif facts.optimizers_stepped > 1:
        prof.add_note(f"{facts.optimizers_stepped} optimizers stepped ({', '.join(facts.optimizer_names)}): an "
                      "update right after another with no backward between (a second parameter group's "
                      "optimizer) ends no step; steps follow the order the other updates repeat in")
    if facts.relearned_at:
        at = ", ".join(map(str, facts.relearned_at))
        prof.add_note(f"the order of optimizer updates changed during the run: step(s) {at} each hold the "
                      f"updates made while the new order was learned (at least {CONFIRM}, or two rounds)")
    alternate = steps > 0 and 2 * facts.alternating_steps > steps
    if facts.alternating_steps:
        prof.event("context", "alternating objectives", objectives_alternate=alternate,
                   alternating_steps=facts.alternating_steps)
    if alternate:
        prof.add_note(f"in {facts.alternating_steps} of {steps} steps a backward came after an update of the same "
                      "step (alternating objectives, e.g. a GAN's discriminator and generator): the loss shown is "
                      "the first objective's, and the loss-curve checks (divergence, plateau, spikes) are left "
                      "out, since one objective rising against another is not a divergence")


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
