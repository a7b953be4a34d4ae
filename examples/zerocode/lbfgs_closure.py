"""LBFGS with a closure: forward and backward run inside optimizer.step(), several times per update."""
import torch
from torch import nn

torch.manual_seed(0)
X = torch.linspace(-1, 1, 64).unsqueeze(1)
Y = torch.sin(3 * X)
model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
evaluations = 0


def closure():
    global evaluations
    evaluations += 1
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(X), Y)
    loss.backward()
    return loss


updates = 0
for _ in range(6):
    loss = opt.step(closure)
    updates += 1
print(f"final loss {float(loss):.4f}")
print(f"closure evaluations {evaluations}")
print(f"updates {updates}")
