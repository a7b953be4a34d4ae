"""Gradient accumulation (4 micro-batches of loss / 4 per update) that prints each update's loss: the sum
of the losses it passed to backward, i.e. the mean loss of the update's 16 samples."""
import torch
from torch import nn

torch.manual_seed(0)
X, Y = torch.randn(128, 12), torch.randint(0, 3, (128,))
model = nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
accum, batch = 4, 4
for update in range(8):
    total = 0.0
    for k in range(accum):
        i = (update * accum + k) * batch
        loss = nn.functional.cross_entropy(model(X[i:i + batch]), Y[i:i + batch]) / accum
        loss.backward()
        total += loss.item()
    opt.step()
    opt.zero_grad()
    print(f"update {update} loss {total!r}")
