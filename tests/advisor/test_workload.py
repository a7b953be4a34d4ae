"""Real probes in this process: a small torch model, real DataLoader workers, a real allocator failure."""

from __future__ import annotations

import multiprocessing
from typing import Any, Mapping

import pytest
import torch
from torch import nn

from throughput.advisor.search import AdvisorError, search
from throughput.advisor.space import SearchSettings, SearchSpace
from throughput.advisor.trials import is_oom
from throughput.advisor.workload import Workload, WorkloadTarget, make_loader


def _data() -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(64, 8, generator=g), torch.randint(0, 2, (64,), generator=g))


def build_tiny(config: Mapping[str, object]) -> Workload:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    return Workload(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    loader=make_loader(_data(), config), loss_fn=_loss)


def _loss(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


class Exploding(nn.Module):
    """Asks the allocator for 2**60 bytes (an exabyte) per sample: fails at batch 1 on any machine."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.empty(x.shape[0] << 60, dtype=torch.uint8).float().sum() * x.sum()


def build_exploding(config: Mapping[str, object]) -> Workload:
    model = Exploding()
    param = nn.Parameter(torch.zeros(1))
    return Workload(model=model, optimizer=torch.optim.SGD([param], lr=0.1), loader=make_loader(_data(), config),
                    loss_fn=lambda m, b: m(b[0]))


def test_probe_measures_a_real_training_run() -> None:
    target = WorkloadTarget(build_tiny, warmup_steps=1, min_measure_s=0.0)
    r = target.run({"micro_batch_size": 4, "grad_accum": 2}, steps=3)
    assert r.ok and r.steps == 3 and not r.oom
    assert len(r.losses) == 1 + 3                       # warm-up step + measured steps, one loss each
    assert r.samples_per_s is not None and r.samples_per_s > 0
    assert r.data_wait_share is not None and 0.0 <= r.data_wait_share <= 1.0


class _TickingClock:
    """A fake ``time`` module for the workload: each perf_counter() read advances 1 ms, so every
    step measures the same few milliseconds whatever the machine's load."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def perf_counter(self) -> float:
        self.now_s += 0.001
        return self.now_s


def test_a_probe_measures_at_least_its_minimum_window(monkeypatch: pytest.MonkeyPatch) -> None:
    import throughput.advisor.workload as workload

    monkeypatch.setattr(workload, "time", _TickingClock())
    target = WorkloadTarget(build_tiny, min_measure_s=0.05, isolate=False)   # in this process: the fake clock
    r = target.run({"micro_batch_size": 4, "grad_accum": 2}, steps=3)
    assert r.ok and r.samples_per_s is not None and r.steps > 3   # 3 steps of a few fake ms are < 50 ms
    # the rate is samples over the measured time: steps x 4 x 2 samples / rate = measured seconds
    window_s = r.steps * 4 * 2 / r.samples_per_s
    assert window_s >= 0.05                                      # at least the minimum window ...
    assert window_s * (r.steps - 1) / r.steps < 0.05             # ... and not a step more (equal fake steps)
    assert len(r.losses) == 1 + r.steps


def test_same_seed_gives_the_same_losses() -> None:
    target = WorkloadTarget(build_tiny, min_measure_s=0.0)  # a fixed number of steps: comparable losses
    a = target.run({"micro_batch_size": 8, "seed": 3}, steps=2)
    b = target.run({"micro_batch_size": 8, "seed": 3}, steps=2)
    assert a.losses == b.losses                         # the precision A/B relies on this


def test_real_loader_workers_are_shut_down_after_the_probe() -> None:
    target = WorkloadTarget(build_tiny)
    r = target.run({"micro_batch_size": 8, "num_workers": 1, "persistent_workers": True}, steps=2)
    assert r.ok
    assert multiprocessing.active_children() == []


def test_allocator_failure_is_caught_as_oom() -> None:
    r = WorkloadTarget(build_exploding).run({"micro_batch_size": 1}, steps=1)
    assert r.oom and not r.ok and r.error is not None and "allocate" in r.error
    assert "\n" not in r.error


def test_search_on_a_model_that_fails_at_batch_one_says_so() -> None:
    space = SearchSpace(target_global_batch=8, micro_batch_size=(1, 2, 4, 8))
    with pytest.raises(AdvisorError, match="micro-batch 1 already fails") as e:
        search(WorkloadTarget(build_exploding), space, SearchSettings(probe_steps=1, memory_budget_bytes=2**30))
    assert "\n" not in str(e.value)


def test_is_oom_recognises_the_allocators() -> None:
    assert is_oom(MemoryError())
    assert is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"))
    assert not is_oom(RuntimeError("shape mismatch"))


def test_cpu_peak_memory_grows_with_the_batch() -> None:
    """The RSS high-water mark is real: a layer whose activations are 1 MiB per sample shows it."""
    def build(config: Mapping[str, object]) -> Workload:
        model = nn.Sequential(nn.Linear(8, 32_768), nn.ReLU(), nn.Linear(32_768, 2))   # 128 KiB per activation
        return Workload(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                        loader=make_loader(_data(), config), loss_fn=_loss)
    target = WorkloadTarget(build)
    small = target.run({"micro_batch_size": 2}, steps=1)
    large = target.run({"micro_batch_size": 32}, steps=1)
    if small.peak_memory_bytes is None or large.peak_memory_bytes is None:
        pytest.skip("no /proc/self/clear_refs on this system")
    # 30 more samples x 32,768 floats x 4 bytes x (at least the Linear output and the ReLU output) = 7.5 MiB
    assert large.peak_memory_bytes - small.peak_memory_bytes >= 30 * 32_768 * 4 * 2 * 0.9
