"""The py-spy tables point at the loop: main-thread samples before the first step and after the last
are left out, idle waits are listed apart. On a hand-made speedscope profile (the real py-spy run is in
test_pyspy.py)."""

from __future__ import annotations

import pytest

from throughput.analysis.hotspots import is_idle, pyspy_profile
from throughput.report.telemetry import render_telemetry_md
from throughput.analysis.telemetry import PySpyWindow, TelemetrySummary

FRAMES = [
    {"name": "process 100", "file": "", "line": 0},                                               # 0
    {"name": "<module>", "file": "/work/train.py", "line": 3},                                    # 1
    {"name": "_compile_bytecode", "file": "<frozen importlib._bootstrap_external>", "line": 729},  # 2
    {"name": "ModuleCalls.install.<locals>.__call__",
     "file": "/venv/site-packages/throughput/capture/forward.py", "line": 64},                    # 3
    {"name": "Linear.forward", "file": "/venv/site-packages/torch/nn/modules/linear.py", "line": 125},  # 4
    {"name": "Condition.wait", "file": "/usr/lib/python3.11/threading.py", "line": 327},          # 5
    {"name": "save_results", "file": "/work/train.py", "line": 40},                               # 6
    {"name": "Dataset.__getitem__", "file": "/work/data.py", "line": 9},                          # 7
]


def profile() -> dict[str, object]:
    """Weights of 10 ms. Main thread: 3 import samples, then 4 forward, 1 between phases, 2 forward,
    then 2 after the loop. A pin-memory thread of the main process waits twice; a worker process
    loads 3 times and waits 5 times."""
    main = [[0, 1, 2]] * 3 + [[0, 1, 3, 4]] * 4 + [[0, 1]] + [[0, 1, 3, 4]] * 2 + [[0, 1, 6]] * 2
    return {"shared": {"frames": FRAMES}, "profiles": [
        {"name": 'Process 100 Thread 100 "MainThread"', "samples": main, "weights": [0.01] * len(main)},
        {"name": 'Process 100 Thread 101 "pin_memory"', "samples": [[0, 5]] * 2, "weights": [0.01] * 2},
        {"name": 'Process 200 Thread 200 "MainThread"', "samples": [[0, 7]] * 3 + [[0, 5]] * 5,
         "weights": [0.01] * 8},
    ]}


def test_samples_outside_the_loop_are_left_out_and_waits_are_apart() -> None:
    p = pyspy_profile(profile(), main_pid=100)
    assert p.loop_found
    assert p.before_s == pytest.approx(0.03) and p.after_s == pytest.approx(0.02)
    by = {(h.role, h.function): h for h in p.hot}
    assert ("main", "_compile_bytecode") not in by and ("main", "save_results") not in by
    # main in the loop: 7 main-thread samples + 2 pin-memory waits = 0.09 s; Linear.forward has 6 of them
    forward = by[("main", "Linear.forward")]
    assert forward.own_s == pytest.approx(0.06) and forward.share == pytest.approx(0.06 / 0.09)
    assert not forward.idle
    wait_main = by[("main", "Condition.wait")]
    assert wait_main.idle and wait_main.own_s == pytest.approx(0.02)
    # the worker: busy 0.03 s of 0.08 s, idle 0.05 s, listed apart
    assert by[("worker", "Dataset.__getitem__")].share == pytest.approx(0.03 / 0.08)
    assert by[("worker", "Condition.wait")].idle and by[("worker", "Condition.wait")].own_s == pytest.approx(0.05)
    busy_first = [h.function for h in p.hot if h.role == "worker"]
    assert busy_first == ["Dataset.__getitem__", "Condition.wait"]


def test_a_backward_marks_the_loop_without_any_frame_of_ours() -> None:
    """Where the C helper runs, nn.Module.__call__ and Tensor.backward add no frame of ours: torch's own
    backward frames mark the loop (3 set-up samples, then 2 in a backward, then 2 after)."""
    frames = FRAMES + [{"name": "Tensor.backward", "file": "/venv/site-packages/torch/_tensor.py", "line": 625}]
    main = [[0, 1, 2]] * 3 + [[0, 1, 8]] * 2 + [[0, 1, 6]] * 2
    data = {"shared": {"frames": frames}, "profiles": [
        {"name": 'Process 100 Thread 100 "MainThread"', "samples": main, "weights": [0.01] * len(main)}]}
    p = pyspy_profile(data, main_pid=100)
    assert p.loop_found and p.before_s == pytest.approx(0.03) and p.after_s == pytest.approx(0.02)


def test_without_phase_frames_nothing_is_left_out() -> None:
    data = profile()
    data["profiles"] = [dict(data["profiles"][0], samples=[[0, 1, 2]] * 3, weights=[0.01] * 3)]  # type: ignore[index]
    p = pyspy_profile(data, main_pid=100)
    assert not p.loop_found and p.before_s == 0.0 and p.hot[0].function == "_compile_bytecode"


@pytest.mark.parametrize("function, file, idle", [
    ("Condition.wait", "/usr/lib/python3.11/threading.py", True),
    ("Queue.get", "/usr/lib/python3.11/multiprocessing/queues.py", True),
    ("_ConnectionBase.poll", "/usr/lib/python3.11/multiprocessing/connection.py", True),
    ("wait", "/work/train.py", False),                    # the user's own function named wait is work
    ("Thread.run", "/usr/lib/python3.11/threading.py", False),
])
def test_idle_classification(function: str, file: str, idle: bool) -> None:
    assert is_idle(function, file) is idle


def test_report_says_what_was_left_out_and_where_the_flame_graph_is() -> None:
    p = pyspy_profile(profile(), main_pid=100)
    md = render_telemetry_md(TelemetrySummary(gpu=(), host=(), throttling=(), hot_functions=p.hot,
                                              pyspy=PySpyWindow(loop_found=True, before_s=p.before_s,
                                                                after_s=p.after_s, profile="out/pyspy.speedscope.json")))
    assert "0.03 s of samples before the first step and 0.02 s after the last are left out" in md
    assert "`out/pyspy.speedscope.json`" in md
    assert md.index("### Main process\n") < md.index("### Main process: idle waits")
    assert "### DataLoader workers: idle waits" in md
