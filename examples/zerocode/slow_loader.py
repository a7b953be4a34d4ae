"""A map-style Dataset whose every sample is a read from slow storage plus some decoding, loaded with no
worker processes: the training step waits for its batches. `throughput advise` measures loader workers.

    python examples/zerocode/slow_loader.py --steps 200
    throughput advise examples/zerocode/slow_loader.py --steps 200
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Records(Dataset):
    """Each item: a 2 ms read (network storage, an object store), then a small decode on the CPU."""

    def __init__(self, n=4096, read_s=0.002):
        self.n, self.read_s = n, read_s

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(self.read_s)                       # waiting for storage, not computing
        g = torch.Generator().manual_seed(i)
        x = torch.randn(64, generator=g).cumsum(0) / 8  # "decoding"
        return x, torch.tensor(i % 4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    torch.manual_seed(0)
    loader = DataLoader(Records(), batch_size=16, shuffle=True)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    updates = 0
    while updates < args.steps:
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            updates += 1
            if updates == args.steps:
                break
    print(f"final loss {loss.item():.4f}")
    print(f"updates {updates}")


if __name__ == "__main__":
    main()
