"""CPU training workload for the zero-code overhead benchmark. It times its own steps, so plain and
profiled runs are measured the same way: prints ``median_step_s <seconds>`` (wall time) and
``median_step_cpu_s <seconds>`` (this process's CPU time, which a busy shared machine disturbs less)
over the steady steps.

Usage: python benchmarks/_zerocode_workload.py HIDDEN STEPS
       python benchmarks/_zerocode_workload.py blocks STEPS   (300 Linear+ReLU blocks: 901 module calls a step)
       python benchmarks/_zerocode_workload.py HIDDEN STEPS --marked WARM
           (for an instruction count: WARM steps, a region mark, STEPS steps, a region mark; prints nothing)
"""
import os
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

WARMUP = 5
BLOCKS, BLOCK_WIDTH = 300, 16


class Block(nn.Module):
    """Linear + ReLU: three module calls (the block and its two children)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.lin, self.act = nn.Linear(width, width), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.lin(x))


def build(hidden: int) -> tuple[nn.Module, torch.optim.Optimizer, DataLoader]:
    """hidden > 0: a 4-layer MLP of that width; hidden == 0: BLOCKS blocks, 1 + 3 * BLOCKS module calls."""
    torch.manual_seed(0)
    if hidden == 0:
        blocks = nn.Sequential(*[Block(BLOCK_WIDTH) for _ in range(BLOCKS)])
        data = TensorDataset(torch.randn(16 * 8, BLOCK_WIDTH), torch.randint(0, BLOCK_WIDTH, (16 * 8,)))
        return blocks, torch.optim.SGD(blocks.parameters(), lr=1e-3), DataLoader(data, batch_size=16)
    model = nn.Sequential(nn.Linear(256, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = TensorDataset(torch.randn(64 * 8, 256), torch.randint(0, 10, (64 * 8,)))
    return model, opt, DataLoader(data, batch_size=64, shuffle=True)


def train(hidden: int, steps: int, cpu: bool = False) -> list[float]:
    """Per-step times in seconds between successive optimizer updates: wall time, or this process's
    CPU time when ``cpu``."""
    clock = time.process_time if cpu else time.perf_counter
    model, opt, loader = build(hidden)
    times: list[float] = []
    last = clock()
    while len(times) < steps:
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            now = clock()
            times.append(now - last)
            last = now
            if len(times) == steps:
                break
    return times


def mark_region() -> None:
    """Where the counted steps start and end: valgrind's callgrind, run with ``--dump-before=ctermid``,
    writes its counters out at each call. ``os.ctermid`` is a C library call that neither Python's
    start-up, torch nor the profiler makes, and it makes no system call."""
    os.ctermid()


def train_marked(hidden: int, warm: int, steps: int) -> None:
    """``warm`` steps, a region mark, ``steps`` steps, a region mark (the same loop as ``train``)."""
    model, opt, loader = build(hidden)
    done = 0
    while True:
        for x, y in loader:
            if done == warm:
                mark_region()
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == warm + steps:
                mark_region()
                return


if __name__ == "__main__":
    torch.set_num_threads(1)
    hidden, steps = (0 if sys.argv[1] == "blocks" else int(sys.argv[1])), int(sys.argv[2])
    if sys.argv[3:4] == ["--marked"]:
        train_marked(hidden, int(sys.argv[4]), steps)
    else:
        wall = sorted(train(hidden, steps + WARMUP)[WARMUP:])
        cpu = sorted(train(hidden, max(3, steps // 3) + WARMUP, cpu=True)[WARMUP:])
        print(f"median_step_s {wall[len(wall) // 2]:.9f}")
        print(f"median_step_cpu_s {cpu[len(cpu) // 2]:.9f}")
