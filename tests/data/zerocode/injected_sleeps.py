"""Attribution-accuracy workload: known sleeps injected in each phase (see test_profile_accuracy.py).

Per step: the dataset sleeps SAMPLE_S per sample (BATCH samples), the model's forward sleeps FORWARD_S,
a custom autograd Function's backward sleeps BACKWARD_S, and an optimizer subclass's step sleeps
OPTIMIZER_S. The real compute is tiny next to these.
"""
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

SAMPLE_S, BATCH, FORWARD_S, BACKWARD_S, OPTIMIZER_S = 0.005, 2, 0.006, 0.012, 0.004
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 16


class SlowData(Dataset):
    def __len__(self):
        return BATCH * STEPS

    def __getitem__(self, i):
        time.sleep(SAMPLE_S)
        return torch.ones(4) * i


class SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        time.sleep(BACKWARD_S)
        return grad


class SlowModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        time.sleep(FORWARD_S)
        return SlowBackward.apply(self.lin(x))


class SlowSGD(torch.optim.SGD):
    def step(self, closure=None):
        time.sleep(OPTIMIZER_S)
        return super().step(closure)


model = SlowModel()
opt = SlowSGD(model.parameters(), lr=1e-3)
for x in DataLoader(SlowData(), batch_size=BATCH):
    loss = model(x).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
print("done")
