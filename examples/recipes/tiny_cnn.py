"""A data-bound image recipe for ``throughput train``: (image, label) batches and a scalar mean loss.

Every sample is a read from slow storage (1 ms) and a decode with a random crop and flip on the CPU; the
model is a small CNN. With the recipe's ``num_workers=0`` the step waits for its batches, which is what
``throughput advise --recipe`` finds and measures. The loop reports samples/s (there are no tokens).

    throughput train examples/recipes/tiny_cnn.py --out runs/cnn --max-steps 100
    throughput advise --recipe examples/recipes/tiny_cnn.py
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

READ_S = 0.001
N_TRAIN = 4096
N_VAL = 256

config = {"steps": 400, "micro_batch_size": 32, "lr": 2e-3, "warmup_steps": 20, "eval_every": 100,
          "eval_batches": 4, "num_workers": 0, "ckpt_every_steps": 0}


class Images(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Synthetic 3x20x20 images of 4 classes (a class-dependent pattern plus noise), cropped to 16x16."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(READ_S)                               # the read: waiting, not computing
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        label = i % 4
        base = torch.linspace(0, 1, 20).outer(torch.linspace(0, 1, 20)) * (label + 1)
        img = base.expand(3, 20, 20) + 0.3 * torch.randn(3, 20, 20, generator=g)
        top, left = (int(v) for v in torch.randint(0, 5, (2,), generator=g))
        img = img[:, top:top + 16, left:left + 16]
        if torch.rand((), generator=g) < 0.5:
            img = img.flip(2)
        return img.contiguous(), torch.tensor(label)


def build_model(cfg: Any) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, 4))


def build_datasets(cfg: Any) -> tuple[Images, Images]:
    return Images(N_TRAIN, seed=1), Images(N_VAL, seed=2)


def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
    images, labels = batch
    return nn.functional.cross_entropy(model(images), labels)
