"""Fresh-process probes (throughput.advisor.isolate): real children of the real probe server, real
memory, a real SIGKILL. Module-level build functions, so that they pickle by name."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Mapping

import pytest
import torch
from torch import nn

from throughput.advisor.isolate import can_isolate
from throughput.advisor.workload import Workload, WorkloadTarget, make_loader

WIDTH = 32_768                       # one activation of the wide layer: 32,768 floats = 128 KiB per sample


def _data() -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(64, 8, generator=g), torch.randint(0, 2, (64,), generator=g))


def _loss(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def build_wide(config: Mapping[str, object]) -> Workload:
    model = nn.Sequential(nn.Linear(8, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 2))
    return Workload(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    loader=make_loader(_data(), config), loss_fn=_loss)


def _killed(model: nn.Module, batch: Any) -> torch.Tensor:
    os.kill(os.getpid(), signal.SIGKILL)      # what the kernel's out-of-memory killer does
    raise AssertionError("unreachable")


def build_killed(config: Mapping[str, object]) -> Workload:
    model = nn.Linear(8, 2)
    return Workload(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    loader=make_loader(_data(), config), loss_fn=_killed)


def _rss_bytes() -> int:
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not can_isolate(build_wide), reason="needs Linux, no CUDA")
def test_isolated_peak_is_the_same_whatever_ran_before_and_stays_out_of_this_process() -> None:
    target = WorkloadTarget(build_wide)
    assert target.isolate
    first = target.run({"micro_batch_size": 2}, steps=1)
    before = _rss_bytes()
    large = target.run({"micro_batch_size": 32}, steps=1)
    grown = _rss_bytes() - before
    again = target.run({"micro_batch_size": 2}, steps=1)
    assert first.ok and large.ok and again.ok
    assert first.peak_memory_bytes and large.peak_memory_bytes and again.peak_memory_bytes
    # 30 more samples x 32,768 floats x 4 bytes x (at least the Linear output and the ReLU output) = 7.5 MiB
    grow = 30 * WIDTH * 4 * 2
    assert large.peak_memory_bytes - first.peak_memory_bytes >= 0.9 * grow
    # a fresh process per probe: the repeat measures what the first run did (within 256 KiB, two pages of
    # allocator slack per tensor), although a probe 4x its size ran in between
    assert abs(again.peak_memory_bytes - first.peak_memory_bytes) <= 256 * 1024
    # ... and the large probe's memory never entered this process (less than half its growth did)
    assert grown < grow / 2


@pytest.mark.skipif(not can_isolate(build_killed), reason="needs Linux, no CUDA")
def test_a_probe_killed_like_the_oom_killer_is_reported_as_out_of_memory() -> None:
    r = WorkloadTarget(build_killed).run({"micro_batch_size": 4}, steps=1)
    assert r.oom and not r.ok and "SIGKILL" in (r.error or "")
    again = WorkloadTarget(build_wide).run({"micro_batch_size": 2}, steps=1)
    assert again.ok                                 # the server survived its child's death


def test_unpicklable_builds_run_in_this_process() -> None:
    local = lambda config: build_wide(config)  # noqa: E731 - a lambda cannot be pickled by name
    assert not can_isolate(local)
    assert WorkloadTarget(local).isolate is False
    assert WorkloadTarget(build_wide, isolate=False).isolate is False
