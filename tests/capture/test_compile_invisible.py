"""torch.compile sees the same program with the zero-code hooks installed: the same graph breaks, compiled
frames and recompiles as a plain run, and no Dynamo warning of ours (backend "eager": no codegen on CPU)."""

from __future__ import annotations

import logging
import warnings
from typing import Any, Iterator

import pytest
import torch
from torch import nn

from throughput.capture.hooks import Instrumentation
from throughput.capture.profiler import Profiler
from throughput.session.session import Session

pytestmark = pytest.mark.slow   # compiles a few frames twice (about 3 s)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += self.format(record).splitlines()


def _compiled_run(profiled: bool) -> dict[str, Any]:
    """Five steps of a train step whose zero_grad, backward and clipping are inside the compiled
    function; optimizer.step() outside it."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    inst = Instrumentation(Profiler(device="cpu", warmup_steps=0)).install() if profiled else None
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def train_step(x: torch.Tensor) -> torch.Tensor:
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        return loss

    compiled = torch.compile(train_step, backend="eager")
    handler = _Lines()
    torch_log = logging.getLogger("torch")
    torch_log.addHandler(handler)
    losses, session = [], None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for i in range(5):
                x = torch.randn(4, 8, generator=torch.Generator().manual_seed(i))
                losses.append(compiled(x).item())
                opt.step()
    finally:
        torch_log.removeHandler(handler)
        if inst is not None:
            inst.remove()
            session = inst.prof.stop()
    return {"graph_breaks": sum(counters["graph_break"].values()), "frames": dict(counters["frames"]),
            "graphs": counters["stats"]["unique_graphs"], "calls_captured": counters["stats"]["calls_captured"],
            "cache_entries": len(_debug_get_cache_entry_list(train_step.__code__)),
            "warnings": handler.lines + [str(w.message) for w in caught], "losses": losses, "session": session}


@pytest.fixture(scope="module")
def runs() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    yield _compiled_run(profiled=False), _compiled_run(profiled=True)
    torch._dynamo.reset()


def test_same_graph_breaks_frames_and_recompiles(runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    plain, profiled = runs
    for key in ("graph_breaks", "frames", "graphs", "calls_captured", "cache_entries"):
        assert profiled[key] == plain[key], key
    assert plain["graph_breaks"] == 2          # zero_grad (Dynamo skips it) and backward, as torch does
    assert profiled["losses"] == plain["losses"]


def test_no_warnings_of_ours_and_the_eager_parts_are_still_recorded(runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    plain, profiled = runs
    assert profiled["warnings"] == plain["warnings"]
    session: Session = profiled["session"]
    assert len(session.steps) == 5                                             # one per opt.step()
    assert sum(1 for sp in session.spans if sp.phase == "backward") == 5       # run eagerly at its break


# Dynamo imported only at the script's first torch.compile, after the hooks are installed (as under
# `throughput profile`): it then meets the patched Tensor.to, called as a method and as a function.
COMPILES_TENSOR_TO = """\
import torch
from torch._dynamo.utils import counters
def step(x):
    y = x.to(torch.float64) * 2
    return torch.Tensor.to(y, torch.float32) + 1
compiled = torch.compile(step, backend="eager")
for _ in range(3):
    out = compiled(torch.ones(4))
print(dict(counters["graph_break"]), counters["stats"]["unique_graphs"], counters["stats"]["calls_captured"],
      out.tolist())
"""


def test_tensor_to_compiles_as_in_a_plain_run_when_dynamo_comes_after_the_hooks(tmp_path: Any) -> None:
    from tests.cli.profile_helpers import run_plain, run_profiled
    script = tmp_path / "compiles_to.py"
    script.write_text(COMPILES_TENSOR_TO)
    plain = run_plain(script)
    profiled = run_profiled(script, out=tmp_path / "report", options=["--quiet"])
    assert plain.returncode == profiled.returncode == 0, profiled.stderr
    # no graph break: the function form broke the graph when the wrapper called the C method it holds
    assert profiled.stdout == plain.stdout == "{} 1 4 [3.0, 3.0, 3.0, 3.0]\n"   # to, mul, to, add
    assert [line for line in profiled.stderr.splitlines() if not line.startswith("throughput:")] == []


# torch._dynamo.reset() clears Dynamo's start callbacks: imported first and reset, Dynamo must still meet
# the Python wrappers, not the C ones (one graph break of "Around" before the swap moved to the import)
COMPILES_AFTER_RESET = "import torch._dynamo\ntorch._dynamo.reset()\n" + COMPILES_TENSOR_TO

# A Tensor subclass whose to() calls super().to(): the compile path called the method by name, which
# went back to the subclass's to() (RecursionError inside Dynamo, exit 1; plain exits 0)
SUBCLASS_TO = """\
import torch
class Mine(torch.Tensor):
    def to(self, *args, **kwargs):
        return super().to(*args, **kwargs)
compiled = torch.compile(lambda x: x.to(torch.float64) + 1, backend="eager")
for _ in range(2):
    out = compiled(torch.ones(3).as_subclass(Mine))
print(type(out).__name__, out.dtype, out.tolist())
"""


@pytest.mark.parametrize("source, same_counters", [(COMPILES_AFTER_RESET, True), (SUBCLASS_TO, False)],
                         ids=["after-reset", "subclass-to"])
def test_tensor_to_under_compile_edge_cases(tmp_path: Any, source: str, same_counters: bool) -> None:
    from tests.cli.profile_helpers import run_plain, run_profiled
    script = tmp_path / "script.py"
    script.write_text(source)
    plain = run_plain(script)
    profiled = run_profiled(script, out=tmp_path / "report", options=["--quiet"])
    assert plain.returncode == profiled.returncode == 0, profiled.stderr[-2000:]
    # the subclass case breaks its graph under the profiler (the original C method is called: documented)
    assert profiled.stdout == plain.stdout if same_counters else profiled.stdout.splitlines()[-1] == \
        plain.stdout.splitlines()[-1] == "Mine torch.float64 [2.0, 2.0, 2.0]"


# torch.compile(module) asks for the module's __call__.__code__ as it wraps it, before anything compiles:
# with nn.Module.__call__ a C wrapper without one, it raised "torch._dynamo.optimize is called on a non
# function object" (every user module once torch._dynamo was imported, as any optimizer imports it).
COMPILES_A_USER_MODULE = """\
import torch, torch.nn as nn
from torch._dynamo.utils import counters
torch.manual_seed(0)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 4), nn.Linear(4, 1)
    def forward(self, x):
        return self.b(torch.relu(self.a(x)))
net = Net()
opt = torch.optim.SGD(net.parameters(), lr=0.1)
compiled = torch.compile(net, backend="eager")
for _ in range(3):
    loss = compiled(torch.randn(3, 8)).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    print(repr(loss.item()))
other = Net()
other.compile(backend="eager")
print(other(torch.ones(1, 8)).shape, dict(counters["frames"]), dict(counters["graph_break"]),
      counters["stats"]["unique_graphs"])
"""


@pytest.mark.slow
def test_a_user_module_compiles_as_in_a_plain_run(tmp_path: Any) -> None:
    from tests.cli.profile_helpers import run_plain, run_profiled
    script = tmp_path / "compiles_module.py"
    script.write_text(COMPILES_A_USER_MODULE)
    plain = run_plain(script)
    profiled = run_profiled(script, out=tmp_path / "report", options=["--quiet"])
    assert plain.returncode == profiled.returncode == 0, profiled.stderr[-2000:]
    assert profiled.stdout == plain.stdout and "{'total': 2, 'ok': 2} {} 2" in plain.stdout
