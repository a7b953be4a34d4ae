"""A plain DDP training script (no throughput import): 2+ ranks on CPU over gloo; rank 1's dataset
sleeps 50 ms per batch, so rank 1 is the straggler and 'data' is its slow phase."""

import sys
import time

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 12


class RankData(Dataset):
    def __init__(self, rank):
        self.rank = rank

    def __len__(self):
        return STEPS * 4

    def __getitem__(self, i):
        if self.rank == 1 and i % 4 == 0:   # once per batch of 4
            time.sleep(0.05)
        return torch.randn(8), torch.randn(1)


def main():
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in DataLoader(RankData(dist.get_rank()), batch_size=4):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    dist.destroy_process_group()
    print(f"rank {dist.get_rank() if dist.is_initialized() else 'done'}")


if __name__ == "__main__":
    main()
