"""Hot functions from a py-spy speedscope profile: own (self) time per function, split into the main
process and the loader workers, busy apart from idle waits, and limited to the training loop. Pure:
takes the parsed JSON, does no I/O.

The loop: speedscope's sampled profiles carry no timestamps, but the main thread's samples are in
order, and while a step runs its stack holds a frame of a timed phase (the zero-code wrappers in
``throughput/capture/`` that are Python, ``Profiler.iter``, torch's backward or its optimizer step; the
forward's wrapper is C where the helper runs, so a forward alone marks nothing). Samples of the main thread
before the first such sample (imports, model set-up) and after the last one (the script's teardown)
are left out of the tables; they stay in the speedscope file. Other threads and worker processes are
kept whole (their samples cannot be placed in time).

Idle waits: a sample whose innermost frame is a blocking wait of the standard library
(``Condition.wait``, ``Queue.get``, ``Connection.poll``, ``select``, ``sleep``, ...) is idle time, shown
apart from busy time.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

_PROFILE_PID = re.compile(r"Process (\d+)")
_THREAD_ID = re.compile(r"Thread (\d+)")
# frames that exist only while a step's phase runs (files as py-spy reports them, '/'-separated)
_LOOP_FILES = ("throughput/capture/forward.py", "throughput/capture/backward.py", "throughput/capture/optimizers.py",
               "throughput/capture/loaders.py", "throughput/capture/wrappers.py", "torch/optim/optimizer.py")
_LOOP_FUNCTIONS = {("throughput/capture/profiler.py", "Profiler.iter"),
                   ("throughput/capture/profiler.py", "Profiler._iter"),
                   ("throughput/capture/recorder.py", "Recorder.iterate_py"),   # Profiler.iter's host path
                   ("throughput/capture/recorder.py", "Recorder.iterate"),      # (its name in older profiles)
                   # a backward: where the C helper runs, no frame of ours is on the stack during one
                   ("torch/_tensor.py", "Tensor.backward"), ("torch/autograd/__init__.py", "backward"),
                   ("torch/autograd/graph.py", "_engine_run_backward")}
_IDLE_FILES = ("threading.py", "queue.py", "multiprocessing/connection.py", "multiprocessing/queues.py",
               "multiprocessing/synchronize.py", "selectors.py", "socket.py", "subprocess.py")
_IDLE_NAMES = frozenset({"wait", "get", "poll", "_poll", "select", "recv", "_recv", "recv_bytes", "_recv_bytes",
                         "_wait_for_tstate_lock", "join", "sleep", "acquire", "accept", "_communicate"})


@dataclass(frozen=True, slots=True, kw_only=True)
class HotFunction:
    """A function's own time (samples where it was the innermost Python frame)."""

    role: str            # "main" or "worker"
    function: str
    file: str
    line: int            # the line most samples were on
    own_s: float
    share: float         # of all sampled time of this role inside the loop, 0..1
    processes: int       # how many processes of this role it was seen in
    idle: bool = False   # a blocking wait (shown apart from busy time)


@dataclass(frozen=True, slots=True, kw_only=True)
class PySpyProfile:
    hot: tuple[HotFunction, ...]
    loop_found: bool          # False: no phase frame in the main thread, nothing was left out
    before_s: float           # main-thread samples before the first step's first phase (left out)
    after_s: float            # main-thread samples after the last phase (left out)


def is_idle(function: str, file: str) -> bool:
    """True for the standard library's blocking waits (``Condition.wait``, ``Queue.get``, ...)."""
    return function.rsplit(".", 1)[-1] in _IDLE_NAMES and file.replace("\\", "/").endswith(_IDLE_FILES)


def _in_loop(frame: Mapping[str, Any]) -> bool:
    file = str(frame.get("file", "")).replace("\\", "/")
    if file.endswith(_LOOP_FILES):
        return True
    return any(file.endswith(f) and frame.get("name") == n for f, n in _LOOP_FUNCTIONS)


def loop_bounds(samples: Sequence[Sequence[int]], frames: Sequence[Mapping[str, Any]]) -> tuple[int, int] | None:
    """Indices of the first and last sample whose stack holds a phase frame, or None."""
    marks = [i for i, s in enumerate(samples) if any(_in_loop(frames[f]) for f in s)]
    return (marks[0], marks[-1]) if marks else None


def _leaf(sample: Sequence[int], frames: Sequence[Mapping[str, Any]]) -> int | None:
    # speedscope stacks run root first; py-spy adds pseudo frames ("process N", "thread N") with no file
    for index in reversed(sample):
        if frames[index].get("file"):
            return index
    return None


def _is_main_thread(name: str, pid: int) -> bool:
    m = _THREAD_ID.search(name)
    return "MainThread" in name or (m is not None and int(m.group(1)) == pid)


def pyspy_profile(speedscope: Mapping[str, Any], main_pid: int, top: int = 10) -> PySpyProfile:
    """The ``top`` busy and ``top`` idle functions by own time for the main process (pid ``main_pid``)
    and for the other processes (loader workers), main first; the main thread limited to the loop."""
    frames = speedscope.get("shared", {}).get("frames", [])
    acc = _Acc()
    before = after = 0.0
    found = False
    for profile in speedscope.get("profiles", []):
        name = str(profile.get("name", ""))
        m = _PROFILE_PID.search(name)
        pid = int(m.group(1)) if m else main_pid
        samples = profile.get("samples", [])
        weights = profile.get("weights") or [1.0] * len(samples)
        lo, hi = 0, len(samples) - 1
        if pid == main_pid and _is_main_thread(name, pid):
            bounds = loop_bounds(samples, frames)
            if bounds is not None:
                found = True
                lo, hi = bounds
                before += sum(weights[:lo])
                after += sum(weights[hi + 1:])
        role = "main" if pid == main_pid else "worker"
        for sample, weight in zip(samples[lo:hi + 1], weights[lo:hi + 1]):
            acc.add(role, pid, sample, weight, frames)
    return PySpyProfile(hot=acc.top(top), loop_found=found, before_s=before, after_s=after)


def hot_functions(speedscope: Mapping[str, Any], main_pid: int, top: int = 10) -> tuple[HotFunction, ...]:
    """``pyspy_profile(...).hot``."""
    return pyspy_profile(speedscope, main_pid, top).hot


class _Acc:
    """Own time per (role, busy/idle, function) while walking the samples."""

    def __init__(self) -> None:
        self.own: dict[tuple[str, bool], dict[tuple[str, str], float]] = defaultdict(lambda: defaultdict(float))
        self.lines: dict[tuple[str, str], dict[int, float]] = defaultdict(lambda: defaultdict(float))
        self.pids: dict[tuple[str, str, str], set[int]] = defaultdict(set)
        self.total: dict[str, float] = defaultdict(float)

    def add(self, role: str, pid: int, sample: Sequence[int], weight: float,
            frames: Sequence[Mapping[str, Any]]) -> None:
        self.total[role] += weight
        leaf = _leaf(sample, frames)
        if leaf is None:
            return
        frame = frames[leaf]
        key = (str(frame.get("name", "?")), str(frame.get("file", "")))
        self.own[(role, is_idle(*key))][key] += weight
        self.lines[key][int(frame.get("line") or 0)] += weight
        self.pids[(role, *key)].add(pid)

    def top(self, k: int) -> tuple[HotFunction, ...]:
        out: list[HotFunction] = []
        for role in ("main", "worker"):
            for idle in (False, True):
                ranked = sorted(self.own[(role, idle)].items(), key=lambda item: -item[1])[:k]
                for (name, file), own_s in ranked:
                    lines = self.lines[(name, file)]
                    out.append(HotFunction(role=role, function=name, file=file, line=max(lines, key=lines.__getitem__),
                                           own_s=own_s, share=own_s / self.total[role] if self.total[role] else 0.0,
                                           processes=len(self.pids[(role, name, file)]), idle=idle))
        return tuple(out)
