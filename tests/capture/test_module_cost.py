"""Zero-code cost independent of the module count: after the learning steps, module classes seen only
nested inside the outermost call bypass the wrapper (a ``_bypass.Bypass`` in their class dict); outermost
classes keep it; tracers that patch ``nn.Module.__call__`` (fx, export) still reach every module;
torch.compile starting to compile gives every class the wrapper back; everything is restored."""

from __future__ import annotations

import pickle
import warnings
from collections import Counter
from typing import Any, Iterator

import pytest
import torch
import torch._dynamo.utils
from torch import nn

from throughput.capture.forward import bypass_class
from throughput.capture.hooks import Instrumentation
from throughput.capture.patching import leftover_patches
from throughput.capture.profiler import Profiler
from throughput.capture.recorder import PURE_PYTHON_ENV
from throughput.timing.clock import FakeClock

ORIGINAL_CALL = nn.Module.__call__
Bypass = bypass_class()
needs_helper = pytest.mark.skipif(Bypass is None, reason="the C helper (_bypass.c) is not built")


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


def _train(steps: int, warmup: int) -> tuple[Instrumentation, nn.Module, list[bool]]:
    """Train a Sequential of Blocks (itself holding a nested Sequential) with an MSELoss; return the
    model and, per step, whether Block instances still went through the wrapper."""
    inst = Instrumentation(Profiler(clock=FakeClock(), device="cpu", warmup_steps=warmup)).install()
    model = nn.Sequential(Block(), nn.Sequential(Block(), Block()))
    loss_fn = nn.MSELoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    wrapped = []
    for _ in range(steps):
        loss_fn(model(torch.randn(2, 4)), torch.zeros(2, 4)).backward()
        opt.step()
        wrapped.append(not isinstance(vars(Block).get("__call__"), Bypass or ()))
    return inst, model, wrapped


def _stop(inst: Instrumentation) -> Any:
    inst.remove()
    return inst.prof.stop()


@needs_helper
def test_nested_only_classes_bypass_the_wrapper_after_the_warmup() -> None:
    inst, _, wrapped = _train(steps=4, warmup=2)
    try:
        assert wrapped == [True, False, False, False]        # two learning steps: after the 2nd, bypassed
        assert isinstance(vars(nn.Linear)["__call__"], Bypass)
        # read from the class, __call__ is nn.Module's, as in a plain run (identity, pickling by name)
        assert Block.__call__ is nn.Module.__call__ is not ORIGINAL_CALL
        assert pickle.loads(pickle.dumps(nn.Linear.__call__)) is nn.Module.__call__
        # from an instance, nn.Module's bound to it, as in a plain run (a call never reads it so: no frame)
        block = Block()
        assert block.__call__.__func__ is nn.Module.__call__ and block.__call__.__self__ is block
        assert block.__call__ == nn.Module.__call__.__get__(block)
        # outermost classes keep the wrapper: Sequential (also nested, but seen outermost) and the loss
        assert "__call__" not in vars(nn.Sequential) and "__call__" not in vars(nn.MSELoss)
    finally:
        session = _stop(inst)
    assert "__call__" not in vars(Block) and "__call__" not in vars(nn.Linear)   # restored
    assert leftover_patches() == []
    # every step still has its two outermost forwards (model, loss): 2 per step, 4 steps
    assert sum(1 for sp in session.spans if sp.phase == "forward") == 2 * 4


@needs_helper
def test_warmup_zero_still_learns_one_step() -> None:
    inst, _, wrapped = _train(steps=2, warmup=0)
    _stop(inst)
    assert wrapped == [False, False]


def test_nothing_is_bypassed_without_the_c_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python fallback would be nn.Module's own __call__ in the class dict, which fx and export
    tracers (patching nn.Module.__call__) would not reach: without the helper, nothing is bypassed."""
    monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    inst, _, wrapped = _train(steps=3, warmup=1)
    _stop(inst)
    assert wrapped == [True, True, True] and "__call__" not in vars(Block)


def test_nothing_is_bypassed_once_torch_compile_has_compiled() -> None:
    torch.compile(lambda x: x * 2, backend="eager")(torch.ones(2))   # Dynamo guards on __call__ from now on
    inst, _, wrapped = _train(steps=3, warmup=1)
    _stop(inst)
    assert wrapped == [True, True, True] and "__call__" not in vars(Block)


@needs_helper
def test_compiling_after_the_learning_steps_gives_the_wrapper_back() -> None:
    """Dynamo reads a module class's ``__call__`` and guards on its class dict: when it starts compiling,
    every bypass is taken back, so it compiles as it would have had nothing been bypassed."""
    inst, model, _ = _train(steps=3, warmup=1)
    try:
        assert isinstance(vars(Block)["__call__"], Bypass)
        compiled = torch.compile(model, backend="eager")
        expected = model(torch.ones(2, 4))
        assert torch.equal(compiled(torch.ones(2, 4)), expected)
        assert "__call__" not in vars(Block) and "__call__" not in vars(nn.Linear)
        assert torch._dynamo.utils.counters["frames"]["ok"] >= 1
    finally:
        _stop(inst)
    assert leftover_patches() == []


def _fx_nodes(model: nn.Module) -> list[tuple[str, str]]:
    return [(n.op, str(n.target)) for n in torch.fx.symbolic_trace(model).graph.nodes]


@needs_helper
def test_fx_traces_bypassed_classes_as_in_a_plain_run() -> None:
    """fx's tracer patches nn.Module.__call__ to record leaf modules (Linear) as call_module nodes; a
    bypassed class must still reach it, or the graph traces through the leaves."""
    plain = _fx_nodes(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    inst, model, _ = _train(steps=3, warmup=1)
    try:
        assert isinstance(vars(nn.Linear)["__call__"], Bypass)
        assert _fx_nodes(nn.Sequential(nn.Linear(4, 4), nn.ReLU())) == plain
        assert ("call_module", "0.lin") in _fx_nodes(model)
    finally:
        _stop(inst)
    assert plain == [("placeholder", "input"), ("call_module", "0"), ("call_module", "1"), ("output", "output")]


def test_jit_trace_under_the_hooks_warns_nothing_and_records_no_phase() -> None:
    """torch.jit.trace runs the module with tracer values: the hooks neither read them (the batch
    counters would convert a traced size to an int: a TracerWarning) nor time the call."""
    inst, _, _ = _train(steps=1, warmup=1)
    try:
        before = inst.prof.recorder.depth, len(inst.prof.session().spans)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # torch's own, about jit.trace itself
            warnings.simplefilter("error", torch.jit.TracerWarning)
            traced = torch.jit.trace(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), torch.randn(2, 4),
                                     check_trace=False)   # the check would rerun the module untraced
        assert (inst.prof.recorder.depth, len(inst.prof.session().spans)) == before
        assert traced(torch.ones(3, 4)).shape == (3, 4)
    finally:
        _stop(inst)
