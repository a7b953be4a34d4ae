"""Zero-code cost independent of the module count: after the learning steps, module classes seen only
nested inside the outermost call bypass the wrapper; outermost classes keep it; everything is restored."""

from __future__ import annotations

from collections import Counter
from typing import Iterator

import pytest
import torch
import torch._dynamo.utils
from torch import nn

from throughput.capture.hooks import Instrumentation
from throughput.capture.profiler import Profiler
from throughput.timing.clock import FakeClock

ORIGINAL_CALL = nn.Module.__call__


@pytest.fixture(autouse=True)
def _as_in_a_fresh_process() -> Iterator[None]:
    """Other tests in this process compiled functions; Dynamo's frame counter remembers it, and the
    hooks then (rightly) leave module classes alone. Each test here starts from the count of a fresh
    process (emptied in place, since Dynamo counts into this very object) and puts it back after."""
    frames = torch._dynamo.utils.counters["frames"]
    saved = Counter(frames)
    frames.clear()
    yield
    frames.clear()
    frames.update(saved)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x))


def _train(steps: int, warmup: int) -> tuple[Instrumentation, list[bool]]:
    """Train a Sequential of Blocks (itself holding a nested Sequential) with an MSELoss; return, per
    step, whether Block instances still went through the wrapper."""
    inst = Instrumentation(Profiler(clock=FakeClock(), device="cpu", warmup_steps=warmup)).install()
    model = nn.Sequential(Block(), nn.Sequential(Block(), Block()))
    loss_fn = nn.MSELoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    wrapped = []
    for _ in range(steps):
        loss_fn(model(torch.randn(2, 4)), torch.zeros(2, 4)).backward()
        opt.step()
        wrapped.append(Block.__call__ is not ORIGINAL_CALL)
    return inst, wrapped


def test_nested_only_classes_bypass_the_wrapper_after_the_warmup() -> None:
    inst, wrapped = _train(steps=4, warmup=2)
    try:
        assert wrapped == [True, False, False, False]        # two learning steps: after the 2nd, bypassed
        assert vars(Block)["__call__"] is ORIGINAL_CALL and vars(nn.Linear)["__call__"] is ORIGINAL_CALL
        # outermost classes keep the wrapper: Sequential (also nested, but seen outermost) and the loss
        assert "__call__" not in vars(nn.Sequential) and "__call__" not in vars(nn.MSELoss)
        assert nn.Sequential.__call__ is not ORIGINAL_CALL
    finally:
        inst.remove()
        session = inst.prof.stop()
    assert "__call__" not in vars(Block) and "__call__" not in vars(nn.Linear)   # restored
    # every step still has its two outermost forwards (model, loss): 2 per step, 4 steps
    assert sum(1 for sp in session.spans if sp.phase == "forward") == 2 * 4


def test_warmup_zero_still_learns_one_step() -> None:
    inst, wrapped = _train(steps=2, warmup=0)
    inst.remove()
    inst.prof.stop()
    assert wrapped == [False, False]


def test_nothing_is_bypassed_once_torch_compile_has_compiled() -> None:
    torch.compile(lambda x: x * 2, backend="eager")(torch.ones(2))   # Dynamo guards on __call__ from now on
    inst, wrapped = _train(steps=3, warmup=1)
    inst.remove()
    inst.prof.stop()
    assert wrapped == [True, True, True] and "__call__" not in vars(Block)
