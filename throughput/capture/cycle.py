"""Which optimizer update ends a zero-code step, learned from the order in which optimizers update.

One optimizer: each of its updates ends a step. Several optimizers that take turns in a repeating order
(a GAN's discriminator then generator; a WGAN's five critic updates then one generator update; two
optimizers over two parameter groups stepped one after the other) make one training iteration of a whole
round of that order, so a step ends at the round's last update. Ending at every update of the first one
instead (as before) booked the generator's forward, backward and update of iteration k into step k+1,
summed its loss with the discriminator's and counted two micro-steps a step.

The order is learned from the updates themselves (pure, no torch; ids are ``id(optimizer)``). The caller
passes only turns: an update that follows another with no backward in between (a second parameter group's
optimizer stepped right after the first, every iteration or every few) belongs to the same iteration and
ends no step (``optimizers.OptimizerCalls``).

- Until a round is known, each update ends a step while only one optimizer has updated (a one-optimizer
  script needs no learning); once a second one has, no step ends until a round is learned.
- A round is the shortest period ``p`` (at most ``MAX_ROUND``) of the recent updates, confirmed over
  ``max(2p, CONFIRM)`` of them (fewer only before that many have happened). Short windows are not
  enough: the generator of "D, G, G" updates twice in a row, which looks like a one-optimizer round.
- Where the round starts: with the optimizer first seen in the run (the discriminator of a GAN that
  trains it first), at its update that follows the longest run of other optimizers' updates (for
  "D x5, G": the first D after G).
- An update out of the learned order (a GradScaler skipped one: ``skipped`` keeps the order, so this is
  rare): a later turn of the same optimizer in this round is taken (the round goes on from there); the
  round's first optimizer starts the round anew (the step runs on through it: one longer step); any
  other update, or a second mismatch before a round completes in order, drops the round and learns anew
  (a script that moved on to another optimizer).

What caps its state: ``2 * MAX_ROUND`` recent ids and ``MAX_OPTIMIZERS`` first-seen ranks.
"""

from __future__ import annotations

from collections import deque

MAX_ROUND = 16        # updates in one round at most (a critic trained 15 times a generator update fits)
CONFIRM = 8           # updates a round must repeat over before it is taken (at least two rounds)
MAX_OPTIMIZERS = 64   # optimizers whose first-seen rank is kept (a script may build one per step)


class UpdateCycle:
    """The learned round of optimizer updates and where the current step is in it."""

    def __init__(self) -> None:
        self._recent: deque[int] = deque(maxlen=2 * MAX_ROUND)
        self._rank: dict[int, int] = {}          # id -> order of first update (capped)
        self._round: tuple[int, ...] | None = None
        self._at = 0                              # index in _round of the next expected update
        self._missed = False                      # an out-of-order update since the round last completed
        self._single = True                       # before any round: only one optimizer has updated
        self._made_update = False                 # an update (not a skipped turn) in the current round

    @property
    def learning(self) -> bool:
        """No round is known and steps end at no update until one is (several optimizers have updated)."""
        return self._round is None and not self._single

    @property
    def round(self) -> tuple[int, ...] | None:
        """The learned round (ids in order, first update first), or None while learning."""
        return self._round

    def stepped(self, oid: int) -> bool:
        """Optimizer ``oid`` updated. True when this update ends a step."""
        self._see(oid)
        if self._round is not None:
            ended = self._advance(oid)
            if self._round is not None:
                return ended
        return self._learn()

    def skipped(self, oid: int) -> bool:
        """A GradScaler skipped ``oid``'s update: its turn passes. True when that completes a round of
        several turns that made an update (the step ends there, as it would have). A round that made
        none, and any skip of a one-optimizer round, ends no step: no update, no step; its time stays in
        the step that follows. While learning, the skipped turn still counts in the order."""
        if self._round is None:
            self._see(oid)
            return False
        rnd = self._round
        if len(rnd) == 1 or rnd[self._at] != oid:
            return False
        self._at += 1
        return self._at == len(rnd) and self._complete()

    # -- learned round --------------------------------------------------------------------------
    def _advance(self, oid: int) -> bool:
        rnd, at = self._round, self._at
        assert rnd is not None
        if rnd[at] != oid:
            later = [j for j in range(at + 1, len(rnd)) if rnd[j] == oid]
            if self._missed or (not later and oid != rnd[0]):
                self._round = None      # another order: learn it from the recent updates
                return False
            self._missed = True
            at = later[0] if later else 0
        self._at, self._made_update = at + 1, True
        return self._at == len(rnd) and self._complete()

    def _complete(self) -> bool:
        """The round is complete: the next update starts another. Returns whether it made an update."""
        made, self._at, self._missed, self._made_update = self._made_update, 0, False, False
        return made

    # -- learning -------------------------------------------------------------------------------
    def _learn(self) -> bool:
        recent = list(self._recent)
        period = _period(recent)
        if period is None:
            self._single = self._single and len(set(recent)) == 1
            return self._single
        window = recent[-period:]
        start = self._round_start(window)
        self._round = tuple(window[start:] + window[:start])
        self._at, self._missed, self._single = (period - start) % period, False, False
        self._made_update = self._at != 0
        return self._at == 0

    def _round_start(self, window: list[int]) -> int:
        """The index in ``window`` (one period of the recent updates) where a round starts."""
        first = min(window, key=lambda o: self._rank.get(o, MAX_OPTIMIZERS))
        n = len(window)

        def others_before(i: int) -> int:
            k = 0
            while k < n - 1 and window[(i - 1 - k) % n] != first:
                k += 1
            return k
        return max((i for i in range(n) if window[i] == first), key=others_before)

    def _see(self, oid: int) -> None:
        self._recent.append(oid)
        if oid not in self._rank and len(self._rank) < MAX_OPTIMIZERS:
            self._rank[oid] = len(self._rank)


def _period(recent: list[int]) -> int | None:
    """The shortest period of the recent updates, confirmed over ``max(2p, CONFIRM)`` of them (all of
    them while fewer have happened, but at least two periods); None if there is none yet."""
    n = len(recent)
    for p in range(1, min(MAX_ROUND, n // 2) + 1):
        span = min(n, max(2 * p, CONFIRM))
        if all(recent[n - 1 - i] == recent[n - 1 - i - p] for i in range(span - p)):
            return p
    return None
