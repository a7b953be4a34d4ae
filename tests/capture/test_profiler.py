"""The embedded API on real torch code."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import throughput
from throughput.capture.recorder import PhaseMisuseError
from throughput.session import RunEnd, load_session
from throughput.timing.clock import FakeClock


INJECTED_S: dict[str, float] = {}


def sleep_as(phase: str, seconds: float) -> None:
    """Sleep and book the time actually slept (sleep overshoots under load) as injected truth."""
    t0 = time.perf_counter()
    time.sleep(seconds)
    INJECTED_S[phase] = INJECTED_S.get(phase, 0.0) + time.perf_counter() - t0


class SleepyDataset(Dataset[torch.Tensor]):
    def __init__(self, n: int, sleep_s: float) -> None:
        self.n, self.sleep_s = n, sleep_s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        sleep_as("data", self.sleep_s)
        return torch.full((4,), float(i))


class SleepyLinear(torch.nn.Module):
    def __init__(self, sleep_s: float) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)
        self.sleep_s = sleep_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sleep_as("forward", self.sleep_s)
        return self.lin(x)


class SleepyBackward(torch.autograd.Function):
    sleep_s = 0.0

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        sleep_as("backward", SleepyBackward.sleep_s)
        return grad


class SleepySGD(torch.optim.SGD):
    sleep_s = 0.0

    def step(self, closure=None):  # type: ignore[no-untyped-def,override]
        sleep_as("optimizer", self.sleep_s)
        return super().step(closure)


def test_attribution_lies_between_the_injected_sleeps_and_the_calls_around_them() -> None:
    # Injected per step (batch of 2 items -> 2 x 10 ms in __getitem__): data 20 ms, forward 30 ms,
    # backward 20 ms, optimizer 10 ms. The truth is measured, not intended (sleeps overshoot under
    # load): each phase over the measured steps holds at least the time actually slept in it and at
    # most the time of the code around it, read outside the phase (for data: from the end of one loop
    # body to the start of the next). Misattributing 20 ms of data wait to forward breaks forward's bound.
    SleepyBackward.sleep_s = 0.020
    model = SleepyLinear(0.030)
    opt = SleepySGD(model.parameters(), lr=0.01)
    opt.sleep_s = 0.010  # type: ignore[attr-defined]
    loader = DataLoader(SleepyDataset(16, 0.010), batch_size=2)
    prof = throughput.Profiler(warmup_steps=1)
    around: dict[str, float] = {}

    def book(phase: str, t0: float) -> float:
        now = time.perf_counter()
        around[phase] = around.get(phase, 0.0) + now - t0
        return now

    body_end = time.perf_counter()
    for x in prof.iter(loader):
        t = book("data", body_end)
        with prof.phase("forward"):
            loss = SleepyBackward.apply(model(x)).pow(2).mean()
        t = book("forward", t)
        with prof.phase("backward"):
            loss.backward()
        t = book("backward", t)
        with prof.phase("optimizer"):
            opt.step()
            opt.zero_grad()
        book("optimizer", t)
        if prof.steps_done == 0:
            INJECTED_S.clear()       # the warm-up step is excluded from both sides
            around.clear()
        prof.step(loss=loss)
        body_end = time.perf_counter()
    session = prof.stop()
    for phase in ("data", "forward", "backward", "optimizer"):
        recorded = sum(s.phase_s.get(phase, 0.0) for s in session.steps[1:])
        assert INJECTED_S[phase] <= recorded <= around[phase], (phase, INJECTED_S[phase], recorded, around[phase])
    wall_s = sum(s.duration_s for s in session.steps[1:])
    shares = {p.phase: p.share for p in throughput.summarize(prof).phases}
    assert shares["forward"] == pytest.approx(sum(s.phase_s["forward"] for s in session.steps[1:]) / wall_s)


def test_iter_counts_samples_and_micro_steps_per_step() -> None:
    clock = FakeClock()
    prof = throughput.Profiler(clock=clock, warmup_steps=0)
    batches = [{"input_ids": torch.ones(4, 8, dtype=torch.long),
                "attention_mask": torch.tensor([[1] * 8, [1] * 8, [1] * 4 + [0] * 4, [1] * 2 + [0] * 6])}] * 2
    for batch in prof.iter(batches):   # gradient accumulation: both batches belong to one step
        clock.advance(0.1)
    prof.step()
    (step,) = prof.stop().steps
    assert step.samples == 8            # 2 batches x 4 rows
    assert step.tokens == 64            # 2 x 4 x 8
    assert step.padding_tokens == 20    # 2 x (4 + 6) masked positions
    assert step.micro_steps == 2


def test_decorator_form() -> None:
    clock = FakeClock()
    prof = throughput.Profiler(clock=clock, warmup_steps=0)

    @prof.phase("forward")
    def forward() -> int:
        clock.advance(0.25)
        return 7

    assert forward() == 7
    prof.step()
    assert prof.stop().steps[0].phase_s == {"forward": 0.25}


def test_module_level_phase_is_a_noop_without_a_profiler() -> None:
    with throughput.phase("forward"):
        pass  # nothing running: nothing recorded, nothing raised


def test_module_level_phase_records_on_the_running_profiler() -> None:
    clock = FakeClock()
    prof = throughput.Profiler(clock=clock, warmup_steps=0).start()
    with throughput.phase("data"):
        clock.advance(0.5)
    prof.step()
    assert prof.stop().steps[0].phase_s == {"data": 0.5}


def test_nested_profilers_are_refused() -> None:
    outer = throughput.Profiler().start()
    try:
        with pytest.raises(PhaseMisuseError, match="already running"):
            throughput.Profiler().start()
    finally:
        outer.stop()


@pytest.mark.parametrize("name", ["", "other"])
def test_bad_phase_names(name: str) -> None:
    with pytest.raises(ValueError):
        throughput.Profiler().phase(name)


def test_negative_warmup_is_refused() -> None:
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        throughput.Profiler(warmup_steps=-1)


def test_profile_writes_a_partial_report_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with throughput.profile(out=tmp_path, print_report=False, warmup_steps=0) as prof:
            with prof.phase("forward"):
                pass
            prof.step()
            with prof.phase("forward"):
                1 / 0
    session = load_session(tmp_path / "session.json")
    assert session.info.end is RunEnd.EXCEPTION and session.info.partial
    assert "ZeroDivisionError" in session.info.end_detail
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["partial"] is True and summary["steps"]["total"] == 1
    assert "Partial run" in (tmp_path / "report.md").read_text()


def test_loss_is_converted_once_at_the_end() -> None:
    prof = throughput.Profiler(warmup_steps=0)
    for value in (3.0, 2.0):
        prof.step(loss=torch.tensor(value, requires_grad=True) * 1)
    assert [s.loss for s in prof.stop().steps] == [3.0, 2.0]


def test_a_step_without_batches_does_not_take_the_next_steps_batches() -> None:
    # Step counts are summed when the recorder replays its log, after later batches were iterated.
    prof = throughput.Profiler(warmup_steps=0)
    prof.step()                                            # no batch iterated: samples unknown
    for _ in prof.iter([torch.zeros(5, 3)]):               # one batch of 5 samples, in step 1
        pass
    prof.step()
    assert [s.samples for s in prof.stop().steps] == [None, 5]


@pytest.mark.parametrize(("loss", "kept"), [
    (torch.tensor(2.5, requires_grad=True) * 1, 2.5),     # the usual: a scalar with a graph
    (torch.tensor([1.5]), 1.5),                            # one element, rank 1
    (torch.tensor(3), 3.0),                                # an integer loss reads as a float
    (torch.tensor([1.0, 2.0]), None),                      # more than one element: no loss value
    (torch.tensor(1 + 2j), None),                          # no float value: none, and no error
    (torch.nn.Parameter(torch.tensor(0.25)), 0.25),        # a Tensor subclass takes the general path
    (0.75, 0.75),                                          # a number as given
])
def test_every_kind_of_loss_is_kept_without_disturbing_the_step(loss: object, kept: float | None) -> None:
    prof = throughput.Profiler(warmup_steps=0)
    prof.step(loss=loss)
    (step,) = prof.stop().steps
    assert step.loss == kept


def test_with_the_progress_line_on_steps_are_drained_each_second(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    shown = throughput.Profiler(warmup_steps=0, clock=clock, progress=True)
    hidden = throughput.Profiler(warmup_steps=0, clock=clock, progress=False)
    for prof in (shown, hidden):
        prof.start()
        for _ in range(3):                                 # 3 steps of 2 s: with the line on, each
            with prof.phase("forward"):                    # ends a second or more after the last drain
                clock.advance(2.0)
            prof.step()
        recent = len(prof._recorder.recent_steps())        # what the progress line reads
        prof.stop()
        assert recent == (3 if prof is shown else 0)       # without the line: drained at 128 steps


def test_counts_given_to_step_are_kept_with_or_without_iterated_batches() -> None:
    prof = throughput.Profiler(warmup_steps=0)
    prof.step(samples=8, tokens=64, padding_tokens=5, micro_steps=2, grad_norm=0.5)   # nothing iterated
    prof.step(tokens=32)                                   # the rest unknown, one micro-step
    for _ in prof.iter([torch.zeros(4, 2), torch.zeros(3, 2)]):
        pass                                               # two batches of 4 and 3 samples ...
    prof.step(tokens=70)                                   # ... summed where not given
    steps = prof.stop().steps
    assert [(s.samples, s.tokens, s.padding_tokens, s.micro_steps, s.grad_norm) for s in steps] == [
        (8, 64, 5, 2, 0.5), (None, 32, None, 1, None), (7, 70, None, 2, None)]


def test_steps_after_stop_are_not_recorded() -> None:
    """A loop that profiles its first steps and goes on: the session holds those steps only."""
    prof = throughput.Profiler(warmup_steps=0, progress=False)
    for i in range(5):
        if i == 3:
            prof.stop()
        for _ in prof.iter([torch.zeros(2, 1)]):
            with prof.phase("forward"):
                pass
        assert prof.step(loss=float(i)) == min(i, 3)
    assert [s.loss for s in prof.session().steps] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(("given", "expected"), [
    ({"samples": np.int64(8), "tokens": torch.tensor(64), "grad_norm": torch.tensor(0.5)}, (8, 64, None, 1, 0.5)),
    ({"grad_norm": np.float32(0.25), "micro_steps": 2}, (None, None, None, 2, 0.25)),
    ({"grad_norm": float("nan")}, (None, None, None, 1, "nan")),
])
def test_numbers_given_to_step_are_read_as_python_numbers_and_saved(given: dict[str, Any], expected: tuple[Any, ...],
                                                                     tmp_path: Path) -> None:
    """numpy scalars and one-element tensors (``clip_grad_norm_``'s result, ``mask.sum()``) are read
    where given, so the session can be written and read back."""
    from throughput.session.io import load_session
    prof = throughput.Profiler(warmup_steps=0, progress=False)
    prof.step(**given)
    prof.stop()
    prof.save(tmp_path / "session.json")
    (step,) = load_session(tmp_path / "session.json").steps
    got = (step.samples, step.tokens, step.padding_tokens, step.micro_steps, step.grad_norm)
    assert [type(v) for v in got[:4]] == [type(v) for v in expected[:4]]
    assert got[:4] == expected[:4]
    assert (math.isnan(got[4]) if expected[4] == "nan" else got[4] == expected[4])


@pytest.mark.parametrize(("given", "error", "match"), [
    ({"samples": -1}, ValueError, "samples.*non-negative"),
    ({"tokens": 2.5}, TypeError, "tokens.*whole number"),
    ({"samples": True}, TypeError, "samples.*whole number"),
    ({"tokens": 2**70}, ValueError, "tokens.*2\\*\\*63"),
    ({"micro_steps": 0}, ValueError, "micro_steps.*at least 1"),
    ({"tokens": torch.tensor([1, 2])}, ValueError, "tokens.*2 elements"),
    ({"grad_norm": "0.5"}, TypeError, "grad_norm.*real number"),
])
def test_a_value_that_cannot_be_saved_is_refused_where_step_is_called(given: dict[str, Any], error: type,
                                                                        match: str) -> None:
    prof = throughput.Profiler(warmup_steps=0, progress=False)
    prof.step()
    with pytest.raises(error, match=match):
        prof.step(**given)
    assert prof.step(samples=4) == 1       # the refused step was not recorded; the run goes on
    assert len(prof.stop().steps) == 2


@pytest.mark.parametrize("made", ["before start", "after start"])
def test_a_phase_another_thread_enters_meanwhile_leaves_the_loop_s_steps_intact(made: str) -> None:
    """A phase object (``with`` or ``@prof.phase``) that a prefetch thread also enters while the loop is
    inside it, and leaves after the loop left: the other thread records nothing, and the loop's phase and
    steps close normally (made before start it is a ``PhaseContext``, after start the recorder's cached
    phase object)."""
    import threading
    prof = throughput.Profiler(warmup_steps=0, progress=False)
    if made == "after start":
        prof.start()
    ctx = prof.phase("prefetch")
    prof.start()
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with ctx:
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=other)
    with ctx:                          # the loop inside, the other thread enters after it
        worker.start()
        assert inside.wait(10)
    prof.step()                        # raised PhaseMisuseError when the loop's exit took the other's frame
    release.set()
    worker.join(10)
    with ctx:
        pass
    prof.step()
    steps = prof.stop().steps
    assert len(steps) == 2 and all(set(s.phase_s) == {"prefetch"} for s in steps)


@pytest.mark.parametrize(("make", "error"), [
    (lambda p: p.write_text("not a folder"), NotADirectoryError),
    (lambda p: (p.mkdir(), (p / "session.json").write_text("{}")), FileExistsError),
    (lambda p: (p.mkdir(), (p / "trace.json").write_text("{}")), FileExistsError),
    # A training run's folder and a multi-rank report are taken too, as `throughput profile --out` says.
    (lambda p: (p.mkdir(), (p / "checkpoints").mkdir()), FileExistsError),
    (lambda p: (p.mkdir(), (p / "rank-0").mkdir(), (p / "rank-0" / "session.json").write_text("{}")),
     FileExistsError),
    # Under an existing file: the folder cannot be created, which os.access would not have said for root.
    (lambda p: p.parent.joinpath("file").write_text("x"), PermissionError),
])
def test_profile_checks_its_report_folder_before_the_block_runs(tmp_path: Path, make: Any, error: type) -> None:
    """An ``out`` that cannot take the report fails before the training it would profile, not after."""
    out = tmp_path / "report"
    make(out)
    if error is PermissionError:
        out = tmp_path / "file" / "report"
    ran = []
    with pytest.raises(error, match="report folder"):
        with throughput.profile(out=out, print_report=False):
            ran.append(1)
    assert ran == []
