"""Trains forever; prints 'ready' once a few steps are done (the test then signals it)."""
import torch
from torch import nn
model = nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
step = 0
while True:
    model(torch.randn(16, 8)).pow(2).mean().backward()
    opt.step()
    opt.zero_grad()
    step += 1
    if step == 5:
        print("ready", flush=True)
