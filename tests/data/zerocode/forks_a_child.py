"""Trains 3 steps, forks a child that leaves through sys.exit(0) after the parent's next 3 steps have
begun, trains 3 more, waits for the child. The child's exit must not write a report of its own."""
import os
import sys
import torch
from torch import nn
model = nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=1e-3)


def train(steps):
    for _ in range(steps):
        model(torch.randn(16, 8)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()


train(3)
child = os.fork()
if child == 0:
    sys.exit(0)
train(3)
_, status = os.waitpid(child, 0)
print("child exit", os.waitstatus_to_exitcode(status), flush=True)
