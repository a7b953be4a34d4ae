import torch
from torch import nn


class Explode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, grad):
        raise ValueError("exploded in backward")


model = nn.Linear(3, 1)
opt = torch.optim.Adam(model.parameters())
for i in range(4):
    out = model(torch.randn(5, 3)).sum()
    if i == 2:
        out = Explode.apply(out)
    out.backward()
    opt.step()
