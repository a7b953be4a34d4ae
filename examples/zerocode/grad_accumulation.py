"""Gradient accumulation: four micro-batches (forward + backward) per optimizer update."""
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
data = TensorDataset(torch.randn(128, 12), torch.randint(0, 3, (128,)))
loader = DataLoader(data, batch_size=4, shuffle=True)
model = nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 3))
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
accum = 4
updates = 0
for i, (x, y) in enumerate(loader):
    loss = nn.functional.cross_entropy(model(x), y) / accum
    loss.backward()
    if (i + 1) % accum == 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        updates += 1
print(f"final loss {loss.item() * accum:.4f}")
print(f"micro_steps_per_update {accum}")
print(f"updates {updates}")
