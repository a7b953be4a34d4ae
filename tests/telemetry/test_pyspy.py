"""py-spy on a run with DataLoader workers: the worker's hot function shows in the worker summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from throughput.analysis.hotspots import hot_functions
from throughput.analysis.telemetry import telemetry_summary
from throughput.capture.profiler import Profiler
from throughput.report.folder import write_report
from throughput.telemetry import TelemetryController
from throughput.telemetry.pyspy import PySpy, find_py_spy, ptrace_blocker


def burn_in_worker_for_pyspy(seconds: float) -> int:
    """The dataset's hot function: a pure-Python spin, so its own time is unmistakable."""
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += 1
    return n


class Spinning(Dataset[torch.Tensor]):
    def __len__(self) -> int:
        return 96

    def __getitem__(self, i: int) -> torch.Tensor:
        burn_in_worker_for_pyspy(0.02)
        return torch.full((4,), float(i))


def _skip_without_ptrace() -> None:
    if find_py_spy() is None:
        pytest.skip("py-spy binary not installed")
    blocker = ptrace_blocker()
    if blocker is not None:
        pytest.skip(f"ptrace not permitted here: {blocker}")


def test_worker_hot_function_in_summary(tmp_path: Path) -> None:
    _skip_without_ptrace()
    controller = TelemetryController(nvml=False, host=False, py_spy_dir=tmp_path, py_spy_rate=100)
    prof = Profiler(device="cpu", warmup_steps=0, telemetry=controller)
    loader = DataLoader(Spinning(), batch_size=8, num_workers=2)
    with prof:
        for batch in prof.iter(loader):   # 96 items x 20 ms over 2 workers: ~1 s of worker time
            with prof.phase("forward"):
                batch.sum()
            prof.step()
    del loader
    session = prof.session()
    if any("could not attach" in n or "wrote no profile" in n for n in session.info.notes):
        pytest.skip(f"py-spy could not sample here: {session.info.notes}")
    profile = tmp_path / "pyspy.speedscope.json"
    assert str(profile) in session.artifacts and json.loads(profile.read_text())["profiles"]
    hot = telemetry_summary(session).hot_functions
    workers = [h for h in hot if h.role == "worker"]
    assert workers, f"no worker samples: {hot}"
    top = workers[0]
    assert top.function == "burn_in_worker_for_pyspy" and top.file.endswith("test_pyspy.py")
    assert top.processes == 2                 # seen in both loader workers
    assert not any(f.kind == "pyspy_hot" for f in prof.summary().findings)   # data, not a hygiene finding
    window = telemetry_summary(session).pyspy
    assert window is not None and window.loop_found      # Profiler.iter marks the loop in the main thread
    out = write_report(session, tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "### DataLoader workers" in md and "burn_in_worker_for_pyspy" in md


def test_missing_target_gives_a_note_not_an_error(tmp_path: Path) -> None:
    _skip_without_ptrace()
    spy = PySpy(tmp_path, rate=50)
    assert spy.start(2**22 + 4321) is False      # no such process: py-spy exits at once
    assert spy.note.startswith("py-spy could not attach")
    spy.stop()


def test_hot_functions_from_a_hand_made_profile() -> None:
    frames = [{"name": "main_loop", "file": "train.py", "line": 10},
              {"name": "load", "file": "data.py", "line": 5},
              {"name": "load", "file": "data.py", "line": 6},
              {"name": "process 1", "file": "", "line": 0}]
    data = {"shared": {"frames": frames}, "profiles": [
        # main pid 100: 3 samples of 0.01 s in main_loop
        {"name": "Process 100 Thread 100", "samples": [[3, 0]] * 3, "weights": [0.01] * 3},
        # worker pid 200: load on line 5 twice, line 6 once, and main_loop once (as leaf)
        {"name": "Process 200 Thread 200", "samples": [[3, 1], [3, 1], [3, 2], [3, 0]], "weights": [0.01] * 4},
    ]}
    hot = hot_functions(data, main_pid=100)
    main = [h for h in hot if h.role == "main"]
    worker = [h for h in hot if h.role == "worker"]
    assert [(h.function, h.own_s) for h in main] == [("main_loop", pytest.approx(0.03))]
    assert worker[0].function == "load" and worker[0].line == 5          # line 5 has 2 of its 3 samples
    assert worker[0].own_s == pytest.approx(0.03) and worker[0].share == pytest.approx(3 / 4)


@pytest.mark.parametrize("scope, euid, blocked", [("0", 1000, False), ("1", 1000, True), ("1", 0, False),
                                                  ("2", 1000, True), ("3", 0, True)])
def test_ptrace_scope_rules(tmp_path: Path, scope: str, euid: int, blocked: bool) -> None:
    f = tmp_path / "ptrace_scope"
    f.write_text(scope + "\n")
    reason = ptrace_blocker(f, euid=euid)
    assert (reason is not None) == blocked
    if blocked and scope != "3":
        assert "--cap-add SYS_PTRACE" in reason and "ptrace_scope=0" in reason
    assert ptrace_blocker(tmp_path / "missing", euid=1000) is None   # no Yama: same-user ptrace allowed


def test_short_paths_for_the_report() -> None:
    from throughput.report.telemetry import short_path
    assert short_path("/v/lib/python3.11/site-packages/torch/nn/linear.py") == "torch/nn/linear.py"
    assert short_path("/usr/lib/python3.11/threading.py") == "python3.11/threading.py"
    assert short_path("/home/me/train.py") == "/home/me/train.py"
