"""Accelerate's ``prepare`` loop with gradient accumulation 2: 60 micro-batches, 30 updates (the
prepared optimizer is an ``AcceleratedOptimizer`` whose ``step`` does nothing between syncs), an LR
scheduler, and ``save_state`` every 15 updates (model through safetensors, optimizer through
``torch.save``)."""

from __future__ import annotations

import os
import sys
import tempfile

import accelerate.utils.other
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _common import UpdateCounter, interval, mark_calls, params_sha256, report, seed_all

STEPS, ACCUM, BATCH = 30, 2, 16


def main(workdir: str) -> None:
    seed_all(0)
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=ACCUM)
    x = torch.randn(STEPS * ACCUM * BATCH, 32)
    y = x[:, :1] * 0.5 + 0.1 * torch.randn(len(x), 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.LayerNorm(64), nn.Linear(64, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    counter = UpdateCounter()
    counter.attach(opt)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=STEPS)
    model, opt, loader, sched = accelerator.prepare(model, opt, loader, sched)
    mark_calls(accelerator, "save_state", "accelerator.save_state")
    mark_calls(accelerate.utils.other, "safe_save_file", "safetensors save_file")  # the model's weights
    mark_calls(torch, "save", "torch.save")  # optimizer, scheduler, RNG states
    loss = torch.tensor(float("nan"))
    with interval("train"):
        for xb, yb in loader:
            with accelerator.accumulate(model):
                loss = nn.functional.mse_loss(model(xb), yb)
                accelerator.backward(loss)
                opt.step()
                sched.step()
                opt.zero_grad()
            if accelerator.sync_gradients and counter.count % 15 == 0:
                accelerator.save_state(os.path.join(workdir, f"state-{counter.count}"))
    if counter.count != STEPS:
        raise RuntimeError(f"expected {STEPS} updates, counted {counter.count}")
    report(updates=counter.count, final_loss=loss.item(), digest=params_sha256(accelerator.unwrap_model(model)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
