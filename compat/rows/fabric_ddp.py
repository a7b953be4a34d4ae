"""Lightning Fabric, DDP on 2 CPU ranks over gloo (run under torchrun: Fabric sees torchelastic and
launches nothing itself). ``setup_dataloaders`` re-creates the DataLoader with a DistributedSampler
injected; ``fabric.backward`` runs the all-reduce; ``fabric.save`` writes a checkpoint at the end."""

from __future__ import annotations

import os
import sys
import tempfile

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _common import UpdateCounter, interval, mark_calls, params_sha256, report, seed_all

STEPS = 30  # 960 samples / 2 ranks / batch 16


def main(workdir: str) -> None:
    fabric = L.Fabric(accelerator="cpu", devices=2, strategy="ddp", num_nodes=1)
    fabric.launch()
    seed_all(0)
    x = torch.randn(960, 32)
    y = x[:, :1] * 0.5 + 0.1 * torch.randn(960, 1)
    loader = fabric.setup_dataloaders(DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True))
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    counter = UpdateCounter()
    counter.attach(opt)
    model, opt = fabric.setup(model, opt)
    mark_calls(fabric, "save", "fabric.save")
    mark_calls(torch, "save", "torch.save")  # inside Lightning's _atomic_save, into a BytesIO
    loss = torch.tensor(float("nan"))
    with interval("train"):
        for xb, yb in loader:
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            fabric.backward(loss)
            opt.step()
        fabric.save(os.path.join(workdir, "fabric.ckpt"), {"model": model, "optimizer": opt})
    if counter.count != STEPS:
        raise RuntimeError(f"expected {STEPS} updates, counted {counter.count}")
    report(updates=counter.count, final_loss=loss.item(), digest=params_sha256(model),
           world_size=fabric.world_size)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
