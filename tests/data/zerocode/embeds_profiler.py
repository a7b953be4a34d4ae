"""A script that embeds its own throughput.Profiler (it must still run under `throughput profile`)."""
import sys

import torch

import throughput

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
prof = throughput.Profiler(warmup_steps=0)
for _ in range(4):
    with prof.phase("forward"):
        loss = model(torch.randn(8, 4)).pow(2).mean()
    with prof.phase("backward"):
        loss.backward()
    with prof.phase("optimizer"):
        opt.step()
        opt.zero_grad()
    prof.step()
session = prof.stop()
print(f"own profiler steps {len(session.steps)}")
sys.exit(0)
