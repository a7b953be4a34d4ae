"""An IterableDataset that reads a stream (records of a remote file, say) without splitting it between
DataLoader workers. With num_workers=0 that is correct; with N workers every worker would run __iter__
from the start and each sample would arrive N times. `throughput advise` checks this before it proposes
workers, and shows the get_worker_info fix instead.

    python examples/zerocode/unsharded_stream.py --steps 200
    throughput advise examples/zerocode/unsharded_stream.py --steps 200
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset


class RecordStream(IterableDataset):
    """Records in file order, each a 2 ms read plus a small decode. No get_worker_info: not sharded."""

    def __init__(self, n=100_000, read_s=0.002):
        self.n, self.read_s = n, read_s

    def __iter__(self):
        for i in range(self.n):
            time.sleep(self.read_s)
            g = torch.Generator().manual_seed(i)
            x = torch.randn(64, generator=g).cumsum(0) / 8
            yield x, torch.tensor(i % 4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    torch.manual_seed(0)
    loader = DataLoader(RecordStream(), batch_size=16)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    updates = 0
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
