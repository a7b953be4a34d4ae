"""The zero-code hooks in-process, on a fake clock: every phase time below is injected by hand."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from throughput.capture.hooks import Instrumentation, MaxStepsReached
from throughput.capture.overrides import Overrides
from throughput.capture.patching import leftover_patches
from throughput.capture.profiler import Profiler
from throughput.session.records import StepRule
from throughput.session.session import Session
from throughput.timing.clock import FakeClock

SAMPLE_S, FORWARD_S, BACKWARD_S, STEP_S = 0.001, 0.004, 0.006, 0.002


class TimedData(Dataset[torch.Tensor]):
    def __init__(self, clock: FakeClock, n: int) -> None:
        self.clock, self.n = clock, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        self.clock.advance(SAMPLE_S)
        return torch.full((3,), float(i))


class TimedBackward(torch.autograd.Function):
    clock: FakeClock

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        TimedBackward.clock.advance(BACKWARD_S)
        return grad


class TimedModel(nn.Module):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock, self.lin = clock, nn.Linear(3, 1)
        TimedBackward.clock = clock

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.advance(FORWARD_S)
        return TimedBackward.apply(self.lin(x))


def timed_sgd(clock: FakeClock, params: Iterator[nn.Parameter]) -> torch.optim.SGD:
    class TimedSGD(torch.optim.SGD):
        def step(self, closure: Any = None) -> Any:
            clock.advance(STEP_S)
            return super().step(closure)
    return TimedSGD(params, lr=0.01)


def instrumented(clock: FakeClock, **kwargs: Any) -> Instrumentation:
    return Instrumentation(Profiler(clock=clock, device="cpu", warmup_steps=0), **kwargs).install()


def finish(inst: Instrumentation) -> Session:
    inst.remove()
    return inst.prof.stop()


def test_phases_steps_samples_and_loss_are_exact() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = TimedModel(clock)
        opt = timed_sgd(clock, model.parameters())
        losses = []
        for x in DataLoader(TimedData(clock, 12), batch_size=4):
            loss = model(x).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
    finally:
        session = finish(inst)
    assert session.info.step_rule is StepRule.OPTIMIZER
    assert len(session.steps) == 3                             # 12 samples / batch 4 = 3 updates
    for step, loss in zip(session.steps, losses):
        assert step.phase_s["data"] == pytest.approx(4 * SAMPLE_S)   # 4 samples x 1 ms
        assert step.phase_s["forward"] == pytest.approx(FORWARD_S)
        assert step.phase_s["backward"] == pytest.approx(BACKWARD_S)
        assert step.phase_s["optimizer"] == pytest.approx(STEP_S)
        assert step.duration_s == pytest.approx(4 * SAMPLE_S + FORWARD_S + BACKWARD_S + STEP_S)
        assert step.samples == 4 and step.micro_steps == 1
        assert step.loss == pytest.approx(loss)
    context = {k: v for e in session.events if e.kind == "context" for k, v in e.detail.items()}
    assert context["num_workers"] == 0 and context["batch_size"] == 4 and context["optimizer"] == "TimedSGD"
    assert context["grad_clipping"] is False
    assert leftover_patches() == []


def test_gradient_accumulation_is_micro_steps_of_one_update() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = TimedModel(clock)
        opt = timed_sgd(clock, model.parameters())
        for i, x in enumerate(DataLoader(TimedData(clock, 12), batch_size=2)):
            (model(x).mean() / 3).backward()
            if (i + 1) % 3 == 0:
                opt.step()
                opt.zero_grad()
    finally:
        session = finish(inst)
    assert len(session.steps) == 2                              # 6 micro-batches / 3 per update
    assert [s.micro_steps for s in session.steps] == [3, 3]
    assert [s.samples for s in session.steps] == [6, 6]         # 3 micro-batches x 2 samples
    assert session.steps[0].phase_s["forward"] == pytest.approx(3 * FORWARD_S)


def test_lbfgs_closure_nests_inside_one_optimizer_step() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = TimedModel(clock)
        opt = torch.optim.LBFGS(model.parameters(), max_iter=3)
        x, evaluations = torch.randn(10, 3), []

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            evaluations.append(1)
            return loss

        for _ in range(2):
            opt.step(closure)
    finally:
        session = finish(inst)
    assert len(session.steps) == 2
    for step in session.steps:
        assert step.samples == 10                               # the batch counted once per update
    n = len(evaluations)
    assert sum(s.phase_s["forward"] for s in session.steps) == pytest.approx(n * FORWARD_S)
    assert sum(s.phase_s["backward"] for s in session.steps) == pytest.approx(n * BACKWARD_S)


def test_no_optimizer_falls_back_to_backward_calls() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = TimedModel(clock)
        for _ in range(4):
            model(torch.randn(5, 3)).sum().backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
    finally:
        session = finish(inst)
    assert session.info.step_rule is StepRule.BACKWARD
    assert len(session.steps) == 4 and all(s.samples == 5 for s in session.steps)
    assert any("each backward() call ends a step" in n for n in session.info.notes)


def test_eval_loop_is_eval_phase_and_not_training_samples() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = TimedModel(clock)
        opt = timed_sgd(clock, model.parameters())
        val = DataLoader(TimedData(clock, 6), batch_size=3)
        for x in DataLoader(TimedData(clock, 4), batch_size=2):
            model(x).mean().backward()
            with torch.no_grad():
                for v in val:               # fetched and run under no_grad: all eval
                    model(v)
            opt.step()
    finally:
        session = finish(inst)
    step = session.steps[0]
    # eval: 2 val batches x (3 samples x 1 ms fetch + 4 ms forward)
    assert step.phase_s["eval"] == pytest.approx(2 * (3 * SAMPLE_S + FORWARD_S))
    assert step.phase_s["data"] == pytest.approx(2 * SAMPLE_S) and step.samples == 2


def test_h2d_copies_torch_save_and_max_steps(tmp_path: Any) -> None:
    clock = FakeClock()
    inst = instrumented(clock, max_steps=2)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    done = 0
    try:
        with pytest.raises(MaxStepsReached):
            while True:
                x = torch.randn(4, 3)
                x.to("meta")                  # a host -> device copy ('meta' stands in for cuda here)
                x.to(torch.float64)           # a dtype conversion: not a copy to a device
                model(x).sum().backward()
                torch.save(model.state_dict(), tmp_path / "m.pt")
                opt.step()
                done += 1
    finally:
        session = finish(inst)
    assert done == 1 and len(session.steps) == 2               # raised from the second step's hook
    names = {sp.phase for sp in session.spans}
    assert {"h2d", "checkpoint", "forward", "backward", "optimizer"} <= names
    assert sum(1 for sp in session.spans if sp.phase == "h2d") == 2   # one per step, not the dtype cast


def test_hygiene_events() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Dropout(0.1), nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with torch.no_grad():
            model(torch.randn(4, 3))          # evaluation while still in train mode
        model.eval()
        model(torch.randn(4, 3)).sum().backward()   # trained while left in eval mode
        opt.step()
        model.train()
        model(torch.randn(4, 3)).sum().backward()   # BatchNorm on a batch of 4 < 16
        opt.step()
    finally:
        session = finish(inst)
    kinds = [e.kind for e in session.events if e.kind != "context"]
    assert kinds == ["eval_in_train_mode", "eval_mode_training", "bn_small_batch"]


def test_overrides_change_dataloader_and_autocast_then_restore() -> None:
    clock = FakeClock()
    overrides = Overrides(batch_size=5, pin_memory=False, prefetch_factor=4, amp="bf16")
    inst = instrumented(clock, overrides=overrides)
    try:
        loader = DataLoader(TimedData(clock, 10), 2)       # positional batch_size=2 is overridden
        model, dtypes = nn.Linear(3, 1), []
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            out = model(x)
            dtypes.append(out.dtype)
            out.float().sum().backward()
            opt.step()
        with torch.no_grad():
            eval_dtype = model(torch.randn(2, 3)).dtype
    finally:
        session = finish(inst)
    assert loader.batch_size == 5 and loader.prefetch_factor is None  # no workers: prefetch not applied
    assert dtypes == [torch.bfloat16, torch.bfloat16]                 # 10 samples / 5 per batch
    assert eval_dtype == torch.float32                                # autocast only on training forwards
    assert not torch.is_autocast_enabled("cpu")
    note = next(n for n in session.info.notes if n.startswith("overrides applied"))
    assert "batch_size=5 on 1 of 1 DataLoader(s)" in note and "prefetch_factor=4 on 0 of 1" in note


def test_remove_restores_every_attribute() -> None:
    before = {name: getattr(owner, name) for owner, name in (
        (torch.Tensor, "backward"), (torch.autograd, "backward"), (torch, "save"),
        (torch.optim.Optimizer, "zero_grad"), (torch.optim.Optimizer, "__init__"),
        (torch.nn.utils, "clip_grad_norm_"), (torch.utils.data.DataLoader, "__init__"))}
    had_to = "to" in torch.Tensor.__dict__
    inst = instrumented(FakeClock())
    assert leftover_patches() != []
    finish(inst)
    after = {name: getattr(owner, name) for owner, name in (
        (torch.Tensor, "backward"), (torch.autograd, "backward"), (torch, "save"),
        (torch.optim.Optimizer, "zero_grad"), (torch.optim.Optimizer, "__init__"),
        (torch.nn.utils, "clip_grad_norm_"), (torch.utils.data.DataLoader, "__init__"))}
    assert after == before and ("to" in torch.Tensor.__dict__) == had_to
    assert leftover_patches() == []


def test_an_optimizer_step_that_raised_does_not_break_later_steps() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = nn.Linear(3, 1)

        class Flaky(torch.optim.SGD):
            calls = 0

            def step(self, closure: Any = None) -> Any:
                Flaky.calls += 1
                if Flaky.calls == 1:
                    raise RuntimeError("transient")
                return super().step(closure)

        opt = Flaky(model.parameters(), lr=0.1)
        for _ in range(3):
            model(torch.randn(2, 3)).sum().backward()
            try:
                opt.step()
            except RuntimeError:
                pass
    finally:
        session = finish(inst)
    assert len(session.steps) == 2                               # the failed update is not a step
    assert [s.micro_steps for s in session.steps] == [2, 1]      # its backward joins the next update


def test_manual_batching_counts_the_model_batch_not_the_loss_module() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model, criterion = nn.Linear(3, 2), nn.CrossEntropyLoss()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
            criterion(model(x), y).backward()      # two outermost forwards: model, then the loss module
            opt.step()
    finally:
        session = finish(inst)
    assert [s.samples for s in session.steps] == [6, 6, 6]   # the batch of 6, counted once per update


@pytest.mark.slow
def test_torch_compile_counts_the_compiled_call_once_and_stays_quiet(recwarn: pytest.WarningsRecorder) -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
        compiled = torch.compile(model, backend="eager")
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            compiled(torch.randn(5, 3)).sum().backward()
            opt.step()
    finally:
        session = finish(inst)
    assert [s.samples for s in session.steps] == [5, 5, 5]
    assert sum(1 for sp in session.spans if sp.phase == "forward") == 3   # the outermost call only
    assert not [w for w in recwarn if "global hooks" in str(w.message) or "get_ident" in str(w.message)]


def test_eval_mode_forward_with_grad_counts_samples_only_if_trained_on() -> None:
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = TimedModel(clock)
        opt = timed_sgd(clock, model.parameters())
        val = DataLoader(TimedData(clock, 6), batch_size=3)
        for x in DataLoader(TimedData(clock, 4), batch_size=2):
            model(x).mean().backward()
            model.eval()
            for v in val:                 # evaluation without no_grad: eval phase, no backward follows
                model(v)
            model.train()
            opt.step()
    finally:
        session = finish(inst)
    assert [s.samples for s in session.steps] == [2, 2]     # the 3-sample eval batches are not counted
    assert session.steps[0].phase_s["eval"] == pytest.approx(2 * FORWARD_S)


def test_keyword_only_batches_are_read_from_the_forward_call() -> None:
    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return (self.emb(input_ids) * attention_mask.unsqueeze(-1)).sum()

    inst = instrumented(FakeClock())
    try:
        model = LM()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        batch = {"input_ids": torch.randint(0, 10, (3, 5)), "attention_mask": torch.ones(3, 5, dtype=torch.long)}
        model(**batch).backward()
        opt.step()
    finally:
        session = finish(inst)
    (step,) = session.steps
    assert (step.samples, step.tokens) == (3, 3 * 5)


class PaddedSequences(Dataset[dict[str, torch.Tensor]]):
    """Sequence i: 6 positions, the first 2 + i % 3 real (ids 1..), the rest padding (id 0, mask 0)."""

    def __len__(self) -> int:
        return 7

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        real = 2 + i % 3
        ids = torch.zeros(6, dtype=torch.long)
        ids[:real] = torch.arange(1, real + 1)
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def test_loader_batches_give_samples_tokens_and_padding_every_step() -> None:
    """Batches of 3, 3, 1 sequences: the counts of each, the smaller last batch included, read where
    the first batch showed them (real tokens per sequence 2, 3, 4, 2, 3, 4, 2 -> padding 4, 3, 2, ...)."""
    inst = instrumented(FakeClock())
    try:
        emb = nn.Embedding(8, 2)
        opt = torch.optim.SGD(emb.parameters(), lr=0.1)
        for batch in DataLoader(PaddedSequences(), batch_size=3):
            (emb(batch["input_ids"]) * batch["attention_mask"].unsqueeze(-1)).sum().backward()
            opt.step()
    finally:
        session = finish(inst)
    assert [(s.samples, s.tokens, s.padding_tokens) for s in session.steps] == [
        (3, 18, 4 + 3 + 2), (3, 18, 4 + 3 + 2), (1, 6, 4)]


def test_a_closure_s_own_code_is_not_the_optimizer_s_time() -> None:
    """``optimizer.step(closure)`` as Lightning calls it, with a training_step around forward and backward
    (1 ms of a framework's own code, by the fake clock): the closure's forward and backward are their
    phases, its own code is the step's ``other``, and ``optimizer`` is the update alone (STEP_S). The
    closure's result reaches the caller, and a second evaluation (LBFGS-like) is paused alike."""
    clock = FakeClock()
    inst = instrumented(clock)
    FRAMEWORK_S = 0.001
    try:
        model = TimedModel(clock)
        opt = timed_sgd(clock, model.parameters())
        x = torch.randn(4, 3)

        def training_step_closure() -> torch.Tensor:
            clock.advance(FRAMEWORK_S)                    # the framework's code around the model
            opt.zero_grad()
            loss = model(x).mean()
            loss.backward()
            return loss

        returned = [opt.step(closure=training_step_closure), opt.step(training_step_closure)]
    finally:
        session = finish(inst)
    assert all(isinstance(r, torch.Tensor) and r.shape == () for r in returned)   # SGD.step returns the loss
    for step in session.steps:
        assert step.phase_s["optimizer"] == pytest.approx(STEP_S)
        assert step.phase_s["forward"] == pytest.approx(FORWARD_S)
        assert step.phase_s["backward"] == pytest.approx(BACKWARD_S)
        assert step.duration_s == pytest.approx(STEP_S + FORWARD_S + BACKWARD_S + FRAMEWORK_S)
    assert len(session.steps) == 2


class _DtypeSeen(nn.Module):
    """Records the dtype its matmul produced (bf16 under a bf16 autocast, fp32 without one)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.seen: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x)
        self.seen.append(out.dtype)
        return out


def _train_under(model: nn.Module, steps: int, around_forward: Any) -> None:
    """``steps`` SGD steps on a 3x4 batch of ones, each forward (and loss) inside ``around_forward()``."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        with around_forward():
            loss = model(torch.ones(3, 4)).float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize(("amp", "recorded", "inside"), [(None, "bf16", torch.bfloat16), ("fp32", "fp32", torch.float32)])
def test_the_script_s_own_autocast_is_recorded_and_amp_fp32_turns_it_off_in_the_forward(
        amp: str | None, recorded: str, inside: torch.dtype) -> None:
    """The hooks read the autocast the script runs its training forward under (the verdict and the
    advisor judge that precision against the hardware); ``--set amp=fp32`` measures the script without
    it: autocast off around the outermost training forward, so the model computes in fp32 (recorded as
    what the model ran in)."""
    from throughput.analysis.summary import capture_context
    from throughput.capture.overrides import Overrides
    inst = instrumented(FakeClock(), overrides=Overrides(amp=amp))
    try:
        model = _DtypeSeen()
        _train_under(model, 2, lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    finally:
        session = finish(inst)
    assert model.seen == [inside, inside]
    assert capture_context(session).get("script_amp", "fp32") == recorded      # fp32: no event (nothing new)
    events = [e.message for e in session.events if e.kind == "context"].count("autocast")
    assert events == (1 if recorded == "bf16" else 0)                          # once, not a step


def _batches_of_four() -> DataLoader[Any]:
    from torch.utils.data import TensorDataset
    return DataLoader(TensorDataset(torch.randn(16, 4), torch.randn(16, 1)), batch_size=4)


@pytest.mark.parametrize("feed", ["preloaded list", "itertools.cycle"])
def test_samples_are_read_from_the_forward_once_the_loader_no_longer_feeds_the_steps(feed: str) -> None:
    """After one pass of the DataLoader, batches replayed from a list or by itertools.cycle are no
    DataLoader's: a step fed by none, after one fed by none either, reads its forward's first tensor (4
    samples). They had no samples for the rest of the run (samples/s '-')."""
    import itertools
    inst = instrumented(FakeClock())
    try:
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        batches: Any = ([(x, y) for x, y in _batches_of_four()] * 3 if feed == "preloaded list"   # 4 up front
                        else itertools.islice(itertools.cycle(_batches_of_four()), 12))          # as it goes
        for x, y in batches:
            loss = (model(x) - y).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        session = finish(inst)
    samples = [s.samples for s in session.steps]
    if feed == "preloaded list":   # the 4 loader batches fetched up front land in the first step
        assert samples == [16, 0] + [4] * 10
    else:                          # the loader's pass, one step of grace (no new samples), the replayed batches
        assert samples == [4] * 4 + [0] + [4] * 7


def test_a_loop_without_backward_counts_each_step_s_samples() -> None:
    """torch.autograd.grad training: no backward call, which was the only reset of the argument count
    (samples [8, None, None, ...])."""
    inst = instrumented(FakeClock())
    try:
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(4):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            for p, g in zip(model.parameters(), torch.autograd.grad(loss, list(model.parameters()))):
                p.grad = g
            opt.step()
    finally:
        session = finish(inst)
    assert [s.samples for s in session.steps] == [8, 8, 8, 8]


def test_a_backward_of_several_losses_records_their_sum() -> None:
    """torch.autograd.backward([l1, l2]) back-propagates l1 + l2: the step's loss is that sum (the first
    alone was recorded)."""
    inst = instrumented(FakeClock())
    try:
        model = nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        out = model(torch.ones(3, 4))
        l1, l2 = out[:, 0].pow(2).mean(), out[:, 1].abs().mean()
        torch.autograd.backward([l1, l2])
        opt.step()
    finally:
        session = finish(inst)
    assert session.steps[0].loss == pytest.approx(l1.item() + l2.item())


class _Adapter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, module: nn.Module | None = None) -> torch.Tensor:
        return self.lin(x) if module is None else module(x)


class _Options:
    """A script's options object whose __getattr__ answers every name (a missing option reads None)."""

    def __init__(self, **options: Any) -> None:
        self.__dict__.update(options)

    def __getattr__(self, name: str) -> Any:
        return None


class _TakesOptions(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, options: _Options, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * (options.scale or 1.0)


class _Logged(torch.Tensor):
    """Counts the torch functions that reach it (the script's own instrumentation)."""

    seen: list[str] = []

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        cls.seen.append(getattr(func, "__name__", str(func)))
        return super().__torch_function__(func, types, args, kwargs or {})


def _logged_steps(model: nn.Module, opt: torch.optim.Optimizer) -> list[str]:
    _Logged.seen.clear()
    for _ in range(2):
        model(torch.ones(5, 4).as_subclass(_Logged)).sum().backward()
        opt.step()
        opt.zero_grad()
    return list(_Logged.seen)


def test_forward_arguments_the_hooks_cannot_read_do_not_change_the_run() -> None:
    """QA: a forward taking a keyword named ``module`` raised "got multiple values for argument
    'module'"; an options object as the first argument (its __getattr__ answering every name) passed for
    a tensor and crashed the run in our read of it; a tensor subclass's __torch_function__ saw our reads
    of the batch and the loss (dim, shape, numel, is_cpu)."""
    plain_model = _Adapter()
    plain = _logged_steps(plain_model, torch.optim.SGD(plain_model.parameters(), lr=0.1))
    inst = instrumented(FakeClock())
    try:
        adapter = _Adapter()
        out_kw = adapter(torch.ones(3, 4), module=adapter.lin)
        takes = _TakesOptions()
        opt = torch.optim.SGD([*adapter.parameters(), *takes.parameters()], lr=0.1)
        for _ in range(2):
            (takes(_Options(scale=2.0), torch.ones(8, 4)).sum() + out_kw.sum().detach()).backward()
            opt.step()
            opt.zero_grad()
        profiled = _logged_steps(adapter, opt)
    finally:
        session = finish(inst)
    assert profiled == plain and plain.count("linear") == 2
    assert [s.samples for s in session.steps][-2:] == [5, 5]


def test_a_loader_read_one_batch_ahead_keeps_its_samples_and_its_rate() -> None:
    """HF's Trainer and Accelerate fetch the next batch before yielding the current one: the last step
    fetches nothing. It counted as unknown (None), and one unknown step left the run without samples/s;
    it adds 0 now, and the run's total is exact (16 samples)."""
    def one_ahead(loader: DataLoader[Any]) -> Iterator[Any]:
        batches = iter(loader)
        current = next(batches)
        for following in batches:
            yield current
            current = following
        yield current

    from throughput.analysis.summary import summarize
    clock = FakeClock()
    inst = instrumented(clock)
    try:
        model = nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in one_ahead(_batches_of_four()):
            clock.advance(0.5)
            (model(x) - y).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    finally:
        session = finish(inst)
    assert [s.samples for s in session.steps] == [8, 4, 4, 0]
    assert summarize(session).rates.samples_per_s == pytest.approx(16 / 2.0)   # 4 steps of 0.5 s


def test_the_same_batch_twice_in_a_step_counts_once_and_a_refilled_buffer_counts_again() -> None:
    """QA: SAM (a second forward and backward on the same batch) counted 32 samples a step for 16. A
    static input buffer refilled with copy_() for each micro-batch is a new batch each time (its version
    counter moves)."""
    inst = instrumented(FakeClock())
    try:
        model = nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(2):                                   # SAM-shaped: two passes on one batch
            x = torch.randn(16, 4)
            for _ in range(2):
                model(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
        buffer = torch.empty(8, 4)
        for _ in range(2):                                   # accumulation of 3 through one buffer
            for _ in range(3):
                buffer.copy_(torch.randn(8, 4))
                model(buffer).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    finally:
        session = finish(inst)
    assert [s.samples for s in session.steps] == [16, 16, 24, 24]


class _TurnsAutocastOff(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return self.net(x.float())


@pytest.mark.parametrize("case", ["entered in the forward", "turned off in the forward"])
def test_the_precision_recorded_is_the_one_the_model_s_modules_ran_in(case: str) -> None:
    """QA: Accelerate's prepare() (and so the HF Trainer) enters its bf16 autocast inside the model's
    forward: the hooks read fp32 at the outermost call, and the bf16 advice was missing. A model that
    turns the script's autocast off inside read bf16 and was told to take it out. The modules' own calls
    tell (read at the first nested call of the learning steps, and kept after them)."""
    from throughput.analysis.summary import capture_context
    from throughput.analysis.verdict import run_amp
    inst = instrumented(FakeClock())
    try:
        if case == "entered in the forward":
            model: nn.Module = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
            model.forward = torch.autocast("cpu", dtype=torch.bfloat16)(model.forward)  # type: ignore[method-assign]
            _train_under(model, 3, contextlib.nullcontext)
        else:
            _train_under(_TurnsAutocastOff(), 3, lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    finally:
        session = finish(inst)
    ctx = capture_context(session)
    autocasts = [e for e in session.events if e.kind == "context" and e.message == "autocast"]
    if case == "entered in the forward":
        assert ctx["script_amp"] == "bf16" and ctx["autocast_inside"] is True and run_amp(ctx) == "bf16"
        # --set amp=fp32 cannot reach it: what ran stays bf16 in the analysis
        assert run_amp({**ctx, "override_amp": "fp32"}) == "bf16"
    else:
        assert ctx["script_amp"] == "fp32" and ctx["autocast_inside"] is True and run_amp(ctx) == "fp32"
    assert len(autocasts) == 1     # learnt in the first step, kept by the next (their nested calls bypassed)
