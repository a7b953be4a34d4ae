"""Config built with exec (nanoGPT's configurator pattern): defaults, then `--key=value` overrides."""
import sys

import torch
from torch import nn

# -- defaults ----------------------------------------------------------------------------------
batch_size = 8
learning_rate = 1e-2
max_iters = 10
# -- the configurator: exec each --key=value (nanoGPT style) -------------------------------------
for arg in sys.argv[1:]:
    key, val = arg[2:].split("=")
    exec(f"{key} = {val}")
config = {k: v for k, v in globals().items() if k in ("batch_size", "learning_rate", "max_iters")}
print(f"config {sorted(config.items())}")

torch.manual_seed(0)
model = nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=learning_rate)
X, Y = torch.randn(256, 4), torch.randn(256, 1)
for it in range(max_iters):
    xb, yb = X[it * batch_size:(it + 1) * batch_size], Y[it * batch_size:(it + 1) * batch_size]
    loss = nn.functional.mse_loss(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"updates {max_iters}")
