"""Manual tensor batching: no DataLoader, batches sliced from tensors held in memory."""
import torch
from torch import nn

torch.manual_seed(0)
X = torch.randn(96, 10)
Y = (X[:, :1] > 0).float()
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
batch_size = 12
updates = 0
for epoch in range(2):
    perm = torch.randperm(len(X))
    for i in range(0, len(X), batch_size):
        idx = perm[i:i + batch_size]
        logits = model(X[idx])
        loss = nn.functional.binary_cross_entropy_with_logits(logits, Y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        updates += 1
print(f"final loss {loss.item():.4f}")
print(f"updates {updates}")
