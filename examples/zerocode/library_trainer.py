"""The training loop lives in an imported library (mini_trainer.py) and reports through callbacks."""
import os
import tempfile

import torch
from torch import nn
from torch.utils.data import TensorDataset

from mini_trainer import Callback, Trainer


class PrintLoss(Callback):
    def on_step_end(self, trainer, step, loss):
        if step % 5 == 0:
            print(f"step {step} loss {loss.item():.4f}")


class SaveEachEpoch(Callback):
    def __init__(self, folder):
        self.folder = folder

    def on_epoch_end(self, trainer, epoch):
        torch.save(trainer.model.state_dict(), os.path.join(self.folder, f"epoch{epoch}.pt"))


torch.manual_seed(0)
data = TensorDataset(torch.randn(80, 6), torch.randn(80, 2))
model = nn.Sequential(nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
with tempfile.TemporaryDirectory() as folder:
    trainer = Trainer(model, data, batch_size=8, epochs=2, callbacks=[PrintLoss(), SaveEachEpoch(folder)])
    updates = trainer.fit(nn.functional.mse_loss)
    print(f"checkpoints {len(os.listdir(folder))}")
print(f"updates {updates}")
