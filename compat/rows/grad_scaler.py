"""``torch.amp.GradScaler`` the way CUDA scripts use it (scale, unscale, clip, step, update).

``--enabled no``: disabled, as such a script runs on a CPU (``enabled=torch.cuda.is_available()``):
every ``scaler.step`` is an optimizer update. ``--enabled yes``: the CPU scaler, started at a scale so
large that the first scaled gradients overflow, so ``scaler.step`` skips the optimizer until the
scale has backed off: fewer updates than iterations, and the profile must count only the updates.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from _common import UpdateCounter, interval, params_sha256, report, seed_all

ITERATIONS, BATCH = 30, 32


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enabled", choices=("yes", "no"), required=True)
    parser.add_argument("workdir", nargs="?", default=None)
    enabled = parser.parse_args().enabled == "yes"
    seed_all(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    counter = UpdateCounter()
    counter.attach(opt)
    # A summed loss above 4 times 2**126 is inf in float32: the first step overflows and is skipped;
    # the scale then backs off by 2**-40, after which nothing overflows.
    scaler = torch.amp.GradScaler("cpu", enabled=enabled, init_scale=2.0**126 if enabled else 2.0**16,
                                  backoff_factor=2.0**-40)
    x = torch.randn(ITERATIONS * BATCH, 32)
    y = x[:, :1] * 0.5 + 0.1 * torch.randn(len(x), 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    loss = torch.tensor(float("nan"))
    with interval("train"):
        for xb, yb in loader:
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(xb), yb, reduction="sum")
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
    report(updates=counter.count, final_loss=loss.item(), digest=params_sha256(model),
           iterations=ITERATIONS, skipped=ITERATIONS - counter.count, final_scale=float(scaler.get_scale()))


if __name__ == "__main__":
    main()
