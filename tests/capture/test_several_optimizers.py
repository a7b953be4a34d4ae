"""Zero-code steps with several optimizers, on a fake clock: a GAN's rounds, two parameter groups' optimizers,
and the loss-curve checks left out when objectives alternate."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.utils.data import DataLoader

from tests.capture.test_zerocode_hooks import BACKWARD_S, FORWARD_S, SAMPLE_S, STEP_S, TimedData, TimedModel, \
    finish, instrumented, timed_sgd
from throughput.analysis.summary import summarize
from throughput.timing.clock import FakeClock


def _pair(clock: FakeClock) -> tuple[TimedModel, TimedModel, torch.optim.Optimizer, torch.optim.Optimizer]:
    """A discriminator and a generator with an optimizer each."""
    disc, gen = TimedModel(clock), TimedModel(clock)
    return disc, gen, timed_sgd(clock, disc.parameters()), timed_sgd(clock, gen.parameters())


def _gan(iterations: int, *, loader: bool) -> tuple:
    """D then G each iteration, each with its own forward, backward and update; returns the session and
    the (lossD, lossG) of every iteration."""
    clock = FakeClock()
    inst = instrumented(clock)
    losses = []
    try:
        disc, gen, opt_d, opt_g = _pair(clock)
        batches = iter(DataLoader(TimedData(clock, 4 * iterations), batch_size=4)) if loader else None
        for i in range(iterations):
            real = next(batches) if batches is not None else torch.full((4, 3), float(i))
            loss_d = (disc(real) ** 2).mean()
            loss_d.backward()
            opt_d.step()
            loss_g = (gen(torch.ones(8, 3)) - 1).abs().mean()   # a batch of 8 noise rows: not samples
            loss_g.backward()
            opt_g.step()
            losses.append((loss_d.item(), loss_g.item()))
    finally:
        session = finish(inst)
    return session, losses


@pytest.mark.parametrize("loader", [True, False])
def test_a_gan_iteration_is_one_step_with_the_first_objective_s_loss(loader: bool) -> None:
    session, losses = _gan(8, loader=loader)
    # step 1 = iteration 1's D update (one optimizer so far); step 2 = G1 + iteration 2 (the round "D G"
    # is learned at G2); then one step per iteration: 8 iterations, 8 steps.
    assert len(session.steps) == 8
    for step, (loss_d, _) in zip(session.steps[2:], losses[2:]):
        assert step.loss == pytest.approx(loss_d)            # D's loss alone, not D's + G's
        assert step.micro_steps == 1                         # G's backward is no accumulation
        assert step.samples == 4                             # the real batch; G's 8 noise rows are not samples
        assert step.phase_s["forward"] == pytest.approx(2 * FORWARD_S)
        assert step.phase_s["backward"] == pytest.approx(2 * BACKWARD_S)
        assert step.phase_s["optimizer"] == pytest.approx(2 * STEP_S)
        if loader:
            assert step.phase_s["data"] == pytest.approx(4 * SAMPLE_S)
    context = {k: v for e in session.events if e.kind == "context" for k, v in e.detail.items()}
    assert context["objectives_alternate"] is True and context["alternating_steps"] == 7   # all but step 1
    assert any("2 optimizer updates take turns (TimedSGD -> TimedSGD)" in n for n in session.info.notes)


def test_alternating_objectives_leave_the_loss_curve_checks_out() -> None:
    session, _ = _gan(40, loader=False)
    # D's loss climbs 10x over the run: under one objective that would be a divergence
    climbing = tuple(replace(s, loss=1.0 if s.index < 20 else 10.0) for s in session.steps)
    rules = {f.rule_id for f in summarize(replace(session, steps=climbing)).findings}
    assert not any(r.startswith("loss") for r in rules)
    single = replace(session, steps=climbing, events=tuple(e for e in session.events
                                                           if "objectives_alternate" not in e.detail))
    assert "loss.divergence" in {f.rule_id for f in summarize(single).findings}


def test_a_second_parameter_group_s_optimizer_is_part_of_the_same_step() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    losses = []
    try:
        head_a, head_b = TimedModel(clock), TimedModel(clock)
        opt_a = timed_sgd(clock, head_a.parameters())
        opt_b = timed_sgd(clock, head_b.parameters())
        for x in DataLoader(TimedData(clock, 24), batch_size=4):
            loss = (head_a(x) + head_b(x)).mean()
            loss.backward()
            opt_a.step()
            opt_b.step()                  # no backward since opt_a's update: the same iteration
            losses.append(loss.item())
    finally:
        session = finish(inst)
    assert len(session.steps) == 6
    assert [s.loss for s in session.steps] == pytest.approx(losses)
    assert [s.micro_steps for s in session.steps] == [1] * 6
    # each step ends at opt_a's update; opt_b's update lands in the next step's optimizer phase
    assert [s.phase_s["optimizer"] for s in session.steps] == pytest.approx([STEP_S] + [2 * STEP_S] * 5)
    assert not any("objectives_alternate" in e.detail for e in session.events)


def test_a_gan_s_skipped_updates_pass_their_turn() -> None:
    """A GradScaler skips D's update in iteration 4 and G's in iteration 6 (gradients set to inf): each
    round still made an update, so 10 iterations are 10 steps, each with D's loss and the real batch."""
    clock = FakeClock()
    inst = instrumented(clock)
    losses = []
    try:
        disc, gen, opt_d, opt_g = _pair(clock)
        scaler = torch.amp.GradScaler("cpu")
        for i, real in enumerate(DataLoader(TimedData(clock, 40), batch_size=4), start=1):
            for model, opt, x, skip in ((disc, opt_d, real, i == 4), (gen, opt_g, torch.ones(8, 3), i == 6)):
                opt.zero_grad()
                loss = (model(x) ** 2).mean()
                scaler.scale(loss).backward()
                grad = next(model.parameters()).grad
                if skip and grad is not None:
                    grad.fill_(float("inf"))
                scaler.step(opt)
                scaler.update()
                losses.append(loss.item())
    finally:
        session = finish(inst)
    assert len(session.steps) == 10
    assert [s.loss for s in session.steps[2:]] == pytest.approx(losses[4::2])   # D's loss of iterations 3..10
    assert [s.samples for s in session.steps] == [4] * 10
    assert any("a skipped turn passes" in n for n in session.info.notes)


def _train(clock: FakeClock, model: TimedModel, opt: torch.optim.Optimizer, x: torch.Tensor) -> float:
    opt.zero_grad()
    loss = (model(x) ** 2).mean()
    loss.backward()
    opt.step()
    return loss.item()


def test_steps_before_a_critic_s_round_is_known_are_warm_up() -> None:
    clock = FakeClock()
    inst = instrumented(clock)     # warm-up 0
    try:
        critic, gen, opt_c, opt_g = _pair(clock)
        for i in range(6):
            for _ in range(5):
                _train(clock, critic, opt_c, torch.ones(4, 3))
            _train(clock, gen, opt_g, torch.ones(8, 3))
    finally:
        session = finish(inst)
    # critic updates 1..5 end a step each (one optimizer so far); G1 starts the learning, so step 6 holds
    # G1, round 2 and is closed by G2 (the round "C x5, G" repeated twice): steps 1..6 are warm-up, then
    # rounds 3..6 are steps 7..10
    assert len(session.steps) == 10 and session.info.warmup_steps == 6
    assert not any("order of optimizer updates changed" in n for n in session.info.notes)


def test_a_script_that_moves_on_to_another_model_names_the_step_that_learned_it() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        first, second, opt_a, opt_b = _pair(clock)
        for _ in range(20):
            _train(clock, first, opt_a, torch.ones(4, 3))
        for _ in range(20):
            _train(clock, second, opt_b, torch.ones(4, 3))
    finally:
        session = finish(inst)
    # 20 steps of A; B's first 8 updates are step 21 (its order is taken once it holds over 8); then 12
    assert len(session.steps) == 20 + 1 + 12 and session.info.warmup_steps == 0
    assert session.steps[20].micro_steps == 1 and session.steps[20].phase_s["optimizer"] == pytest.approx(8 * STEP_S)
    assert any("step(s) 20 each hold the updates made while the new order was learned" in n   # 0-based
               for n in session.info.notes)


@pytest.mark.parametrize("every", [1, 4])
def test_an_optimizer_built_anew_is_the_same_one(every: int) -> None:
    """A script that builds its SGD inside the loop (every iteration, or every 4th as per epoch) over the
    same model: one optimizer, one step per update (keyed by the object, no step ended at all)."""
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = TimedModel(clock)
        for i in range(24):
            if i % every == 0:
                opt = timed_sgd(clock, model.parameters())
            _train(clock, model, opt, torch.ones(4, 3))
    finally:
        session = finish(inst)
    assert len(session.steps) == 24 and session.info.warmup_steps == 0
    assert not any("optimizers stepped" in n or "order of optimizer" in n for n in session.info.notes)
