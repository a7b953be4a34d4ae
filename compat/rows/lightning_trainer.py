"""Lightning ``Trainer``, automatic optimization: Lightning runs ``training_step`` and the backward
inside ``optimizer.step(closure)`` (with ``--accumulate N``, the first N-1 micro-batches of each update
as plain closure calls, the last inside the step). 30 updates of a small MLP on generated data, a checkpoint every 15
updates (ModelCheckpoint -> ``trainer.save_checkpoint`` -> ``torch.save``) and a validation loop every 15
updates (plus Lightning's sanity check before training)."""

from __future__ import annotations

import argparse
import tempfile

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _common import (UpdateCounter, close_interval, interval, mark_calls, open_interval, params_sha256, report,
                     seed_all)

STEPS = 30


class Regressor(L.LightningModule):
    def __init__(self, counter: UpdateCounter) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))
        self.counter = counter
        self.last_loss = float("nan")
        self.val_losses: list[float] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.last_loss = loss.item()
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.val_losses.append(nn.functional.mse_loss(self.net(x), y).item())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        opt = torch.optim.AdamW(self.parameters(), lr=1e-2)
        self.counter.attach(opt)
        return opt


class ValidationTimer(L.Callback):
    """Times each whole validation loop Lightning runs (the framework's own eval work)."""

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start_s = open_interval()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        close_interval("validation", self.start_s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accumulate", type=int, default=1, help="accumulate_grad_batches")
    parser.add_argument("workdir", nargs="?", default=None)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp()
    seed_all(0)
    x = torch.randn(480, 32)
    y = x[:, :1] * 0.5 + 0.1 * torch.randn(480, 1)
    # 24 batches an epoch: even, so that with --accumulate 2 every update has 2 micro-batches (with an odd
    # count Lightning steps on the epoch's last batch alone, and the profile rightly records 1 there)
    loader = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=16, shuffle=True)
    val_loader = DataLoader(TensorDataset(x[400:], y[400:]), batch_size=16)
    counter = UpdateCounter()
    model = Regressor(counter)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=workdir, every_n_train_steps=15, save_top_k=-1)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=STEPS, logger=False, callbacks=[ckpt, ValidationTimer()],
                        val_check_interval=15, accumulate_grad_batches=args.accumulate,
                        enable_progress_bar=False, enable_model_summary=False, deterministic=True)
    mark_calls(trainer, "save_checkpoint", "trainer.save_checkpoint")
    mark_calls(torch, "save", "torch.save")  # inside Lightning's _atomic_save, into a BytesIO
    with interval("train"):
        trainer.fit(model, loader, val_loader)
    assert trainer.global_step == counter.count, (trainer.global_step, counter.count)
    report(updates=counter.count, final_loss=model.last_loss, digest=params_sha256(model),
           val_batches=len(model.val_losses), last_val_loss=repr(model.val_losses[-1]))


if __name__ == "__main__":
    main()
