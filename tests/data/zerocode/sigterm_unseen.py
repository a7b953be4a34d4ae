"""Trains until SIGTERM inside a try/except BaseException/finally, printing what a script can see of
SIGTERM's handling: plain python dies at once, so neither 'caught' nor 'finally' is ever printed."""
import signal
import torch
from torch import nn
print("handler", signal.getsignal(signal.SIGTERM), flush=True)
model = nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
step = 0
try:
    while True:
        model(torch.randn(16, 8)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        step += 1
        if step == 5:
            print("ready", flush=True)
except BaseException as e:
    print("caught", type(e).__name__, flush=True)
finally:
    print("finally", flush=True)
