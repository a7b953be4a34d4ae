"""Run under torchrun (2 ranks, CPU, gloo): DDP on a tiny model; rank 1 sleeps SLOW_S in its data
loading. Each rank profiles itself with the embedded API into <out>/rank-<r>/."""

from __future__ import annotations

import sys
import time

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

import throughput
from throughput.capture.distributed import rank_out_dir

SLOW_S = 0.05
STEPS = 12


class RankData(Dataset[torch.Tensor]):
    def __init__(self, rank: int) -> None:
        self.rank = rank

    def __len__(self) -> int:
        return STEPS * 4

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.rank == 1 and i % 4 == 0:   # once per batch of 4
            time.sleep(SLOW_S)
        return torch.randn(8)


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(RankData(rank), batch_size=4)
    with throughput.profile(out=rank_out_dir(out), print_report=False, device="cpu") as prof:
        for batch in prof.iter(loader):
            with prof.phase("forward"):
                loss = model(batch).pow(2).mean()
            with prof.phase("backward"):
                loss.backward()          # DDP's all-reduce runs in here: rank 0 waits for rank 1
            with prof.phase("optimizer"):
                opt.step()
                opt.zero_grad()
            prof.step()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
