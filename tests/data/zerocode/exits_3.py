import sys
import torch
from torch import nn
model = nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    model(torch.randn(4, 2)).sum().backward()
    opt.step()
print("leaving with 3")
sys.exit(3)
