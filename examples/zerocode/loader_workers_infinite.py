"""DataLoader with worker processes and an infinite sampler; the loop stops after a fixed number of updates."""
import argparse
import itertools

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler


class Squares(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        x = torch.full((8,), float(i % 7) / 7)
        return x, (x * x).sum(0, keepdim=True)


class InfiniteSampler(Sampler):
    """Yields indices forever (the pattern used by detectron2/mmengine style trainers)."""

    def __init__(self, n, seed=0):
        self.n, self.seed = n, seed

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.randperm(self.n, generator=g).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    loader = DataLoader(Squares(), batch_size=8, sampler=InfiniteSampler(64), num_workers=args.workers)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    updates = 0
    for x, y in itertools.islice(loader, args.steps):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        updates += 1
    print(f"final loss {loss.item():.4f}")
    print(f"updates {updates}")


if __name__ == "__main__":
    main()
