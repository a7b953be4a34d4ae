"""A tiny library trainer with callbacks (the loop lives here, not in the user's script)."""
import torch
from torch.utils.data import DataLoader


class Callback:
    def on_step_end(self, trainer, step, loss):
        pass

    def on_epoch_end(self, trainer, epoch):
        pass


class Trainer:
    def __init__(self, model, dataset, batch_size=16, lr=1e-2, epochs=1, callbacks=()):
        self.model, self.dataset, self.epochs = model, dataset, epochs
        self.batch_size, self.lr, self.callbacks = batch_size, lr, list(callbacks)
        self.global_step = 0

    def _loader(self):
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def fit(self, loss_fn):
        opt = torch.optim.RMSprop(self.model.parameters(), lr=self.lr)
        for epoch in range(self.epochs):
            self.model.train()
            for x, y in self._loader():
                loss = loss_fn(self.model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                self.global_step += 1
                for cb in self.callbacks:
                    cb.on_step_end(self, self.global_step, loss)
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch)
        return self.global_step
