"""Attribution-accuracy workload: known sleeps injected in each phase (see test_profile_cli.py).

Per step: the dataset sleeps SAMPLE_S per sample (BATCH samples), the model's forward sleeps FORWARD_S,
a custom autograd Function's backward sleeps BACKWARD_S, and an optimizer subclass's step sleeps
OPTIMIZER_S. The real compute is tiny next to these.

Sleeps overshoot on a busy machine, so the workload measures its own ground truth and writes it to
the JSON file named by argv[2] (when given), per phase: ``slept_s``, the time actually spent in the
injected sleeps, and ``call_s``, the time spent in the whole call that contains the phase (``iter``
and ``next`` on the loader, ``model(x)``, ``loss.backward()``, ``opt.step()`` + ``opt.zero_grad()``), read
outside the call. A phase the profiler records can neither be shorter than its sleeps nor longer
than its calls: ``slept_s <= recorded <= call_s``, whatever the load.
"""
import json
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

SAMPLE_S, BATCH, FORWARD_S, BACKWARD_S, OPTIMIZER_S = 0.005, 2, 0.006, 0.012, 0.004
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 16
TRUTH = {phase: {"slept_s": 0.0, "call_s": 0.0} for phase in ("data", "forward", "backward", "optimizer")}


def sleep_in(phase, seconds):
    t0 = time.perf_counter()
    time.sleep(seconds)
    TRUTH[phase]["slept_s"] += time.perf_counter() - t0


class SlowData(Dataset):
    def __len__(self):
        return BATCH * STEPS

    def __getitem__(self, i):
        sleep_in("data", SAMPLE_S)
        return torch.ones(4) * i


class SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        sleep_in("backward", BACKWARD_S)
        return grad


class SlowModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        sleep_in("forward", FORWARD_S)
        return SlowBackward.apply(self.lin(x))


class SlowSGD(torch.optim.SGD):
    def step(self, closure=None):
        sleep_in("optimizer", OPTIMIZER_S)
        return super().step(closure)


def timed(phase, call):
    t0 = time.perf_counter()
    try:
        return call()
    finally:
        TRUTH[phase]["call_s"] += time.perf_counter() - t0


model = SlowModel()
opt = SlowSGD(model.parameters(), lr=1e-3)
batches = timed("data", lambda: iter(DataLoader(SlowData(), batch_size=BATCH)))  # starting an epoch is data too
while (x := timed("data", lambda: next(batches, None))) is not None:
    out = timed("forward", lambda: model(x))
    loss = out.mean()
    timed("backward", loss.backward)
    timed("optimizer", lambda: (opt.step(), opt.zero_grad()))
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as f:
        json.dump(TRUTH, f)
print("done")
