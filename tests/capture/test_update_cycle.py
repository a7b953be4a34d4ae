"""Which optimizer update ends a step (``capture.cycle.UpdateCycle``), on hand-written update orders.

Each list of ends below is derived from the module's rules: one optimizer's updates end a step from the
first; once a second optimizer updates, no step ends until a round repeats over max(2p, 8) updates (all
of them before 8 have happened), and then each round ends at its last update."""

from __future__ import annotations

from throughput.capture.cycle import CONFIRM, MAX_OPTIMIZERS, MAX_ROUND, UpdateCycle

D, G, X, Y = 1, 2, 3, 4


def ends(order: list[int], cycle: UpdateCycle | None = None) -> list[bool]:
    cycle = cycle or UpdateCycle()
    return [cycle.stepped(oid) for oid in order]


def test_one_optimizer_ends_a_step_at_every_update() -> None:
    assert ends([X] * 10) == [True] * 10


def test_gan_rounds_end_at_the_generator_update() -> None:
    # D ends step 1 (only one optimizer so far); G1, D2 end nothing; G2 completes "D G" repeated twice.
    got = ends([D, G] * 6)
    assert got == [True, False, False, True] + [False, True] * 4
    assert got.count(True) == 6     # 6 iterations, 6 steps


def test_critic_trained_five_times_a_generator_update() -> None:
    cycle = UpdateCycle()
    got = ends(([D] * 5 + [G]) * 4, cycle)
    # D1..D5: one optimizer so far, each ends a step; G1 breaks that round; "D x5, G" is confirmed at G2
    # (12 updates, two rounds); from then each round ends at its G.
    assert got[:6] == [True] * 5 + [False]
    assert got[6:12] == [False] * 5 + [True]
    assert got[12:] == ([False] * 5 + [True]) * 2
    assert cycle.round == (D, D, D, D, D, G)


def test_a_generator_updated_twice_is_not_a_round_of_its_own() -> None:
    cycle = UpdateCycle()
    got = ends([D, G, G] * 5, cycle)
    # "G G" looks like a one-optimizer round over 2 updates: the round must hold over all the updates
    # seen (fewer than 8): "D G G" is confirmed at the 6th update, a G, which ends that round.
    assert got == [True, False, False, False, False, True] + [False, False, True] * 3
    assert cycle.round == (D, G, G)


def test_the_round_starts_with_the_optimizer_seen_first() -> None:
    cycle = UpdateCycle()
    ends([G, D] * 4, cycle)
    assert cycle.round == (G, D)


def test_a_script_that_moves_on_to_another_optimizer_relearns_its_round() -> None:
    got = ends([X] * 20 + [Y] * 20)
    # Y1 breaks X's round; Y's own round is taken once it holds over CONFIRM (8) updates: Y8 ends the step.
    assert got[:20] == [True] * 20
    assert got[20:] == [False] * (CONFIRM - 1) + [True] * (20 - CONFIRM + 1)


def test_a_skipped_update_passes_its_turn() -> None:
    cycle = UpdateCycle()
    ends([D, G] * 4, cycle)
    assert cycle.skipped(D) is False  # a GradScaler skipped D: G's update still completes the round
    assert ends([G], cycle) == [True]
    assert ends([D], cycle) == [False]
    assert cycle.skipped(G) is True   # G skipped: the round made D's update, so it still ends its step
    assert cycle.skipped(D) is False and cycle.skipped(G) is False   # a round with no update ends none
    assert ends([D, G], cycle) == [False, True]


def test_a_one_optimizer_skip_ends_no_step() -> None:
    cycle = UpdateCycle()
    ends([X] * 3, cycle)
    assert cycle.skipped(X) is False and ends([X], cycle) == [True]


def test_one_update_out_of_order_keeps_the_round() -> None:
    cycle = UpdateCycle()
    ends([D, G] * 4, cycle)
    # D missing once (not through a GradScaler): G is this round's later turn and completes it.
    assert ends([G, D, G, D, G], cycle) == [True, False, True, False, True]
    assert cycle.round == (D, G)


def test_the_first_optimizer_early_restarts_the_round_in_one_longer_step() -> None:
    cycle = UpdateCycle()
    ends([D, G] * 4, cycle)
    assert ends([D, D, G, D, G], cycle) == [False, False, True, False, True]
    assert cycle.round == (D, G)


def test_state_is_bounded_however_many_optimizers_update() -> None:
    cycle = UpdateCycle()
    for oid in range(100_000):        # a script building a new optimizer every iteration
        cycle.stepped(oid)
    assert len(cycle._rank) == MAX_OPTIMIZERS and len(cycle._recent) == 2 * MAX_ROUND
