"""No torch.optim: parameters updated by hand after each backward() (steps fall back to backward calls)."""
import torch

torch.manual_seed(0)
w = torch.zeros(5, 1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)
X = torch.randn(64, 5)
y = X @ torch.arange(1.0, 6.0).unsqueeze(1) + 0.5
lr = 0.05
backward_calls = 0
for it in range(15):
    xb, yb = X[(it * 16) % 64:(it * 16) % 64 + 16], y[(it * 16) % 64:(it * 16) % 64 + 16]
    loss = ((xb @ w + b - yb) ** 2).mean()
    loss.backward()
    backward_calls += 1
    with torch.no_grad():
        for p in (w, b):
            p -= lr * p.grad
            p.grad = None
print(f"final loss {loss.item():.4f}")
print(f"backward_calls {backward_calls}")
