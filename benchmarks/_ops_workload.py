"""A CPU training script for the operator window: the forward is one large matmul
(``Linear(width, width, bias=False)``: aten::mm) and the data phase a per-sample Python transform.

    python benchmarks/_ops_workload.py [--steps 40] [--width 1024] [--batch 128] [--cpu-times FILE]

Run it plainly or under ``throughput profile [--ops N]``; it prints the final loss. ``--cpu-times``
writes the CPU time of the training thread per step (one number a line, seconds): on a shared machine
it moves much less with other processes' load than wall time does.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset


class PythonTransform(Dataset[torch.Tensor]):
    """Each sample is built by a pure-Python loop (the data phase's cost is interpreter time)."""

    def __init__(self, width: int, size: int) -> None:
        self.width, self.size = width, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([((i * 31 + k * 17) % 97) / 97.0 for k in range(self.width)])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--cpu-times", default=None)
    args = p.parse_args()
    torch.manual_seed(0)
    model = torch.nn.Linear(args.width, args.width, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loader = DataLoader(PythonTransform(args.width, args.steps * args.batch), batch_size=args.batch)
    loss = torch.zeros(())
    cpu = [time.thread_time()]
    for x in loader:
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        cpu.append(time.thread_time())
    if args.cpu_times:
        with open(args.cpu_times, "w") as f:
            f.writelines(f"{b - a!r}\n" for a, b in zip(cpu, cpu[1:]))
    print(f"loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
