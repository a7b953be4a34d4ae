"""Three example workloads of different shapes for the advisor benchmark (build functions for WorkloadTarget).

- input_bound: every sample is read from (simulated) slow storage, then costs real CPU work in the
  Dataset (FFT-based feature extraction); the model is tiny: loader workers matter, precision does not.
- compute_bound: a wide MLP on pre-made tensors: the micro-batch and precision matter.
- memory_limited: a token-wise MLP whose saved activations grow ~linearly with the batch, run under a
  memory budget: the micro-batch is capped by memory, activation checkpointing trades compute for it.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from throughput.advisor.workload import Workload, make_loader


class FeatureDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Each item: a read from slow storage (``read_s`` of waiting, as for a network file system or an
    object store), then a signal decoded, transformed (rFFT, log magnitude) and normalised on the CPU."""

    def __init__(self, n: int = 4096, signal_len: int = 4096, passes: int = 4, features: int = 64,
                 read_s: float = 0.001) -> None:
        self.n, self.signal_len, self.passes, self.features = n, signal_len, passes, features
        self.read_s = read_s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(self.read_s)               # the storage read: waiting, not computing
        rng = np.random.default_rng(i)
        x = rng.standard_normal(self.signal_len)
        for _ in range(self.passes):          # real per-sample work, like decoding + augmenting
            x = np.log1p(np.abs(np.fft.irfft(np.fft.rfft(x) * 1.01, n=self.signal_len)))
        feats = x[: self.features].astype(np.float32)
        feats = (feats - feats.mean()) / (feats.std() + 1e-6)
        return torch.from_numpy(feats), torch.tensor(i % 10)


def build_input_bound(config: Mapping[str, object], read_s: float = 0.001) -> Workload:
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    loader = make_loader(FeatureDataset(read_s=read_s), config, shuffle=True)
    return Workload(model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3), loader=loader,
                    loss_fn=_classify)


def build_compute_bound(config: Mapping[str, object], width: int = 512, depth: int = 3) -> Workload:
    layers: list[nn.Module] = [nn.Linear(128, width), nn.GELU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.GELU()]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(2048, 128, generator=g), torch.randint(0, 10, (2048,), generator=g))
    loader = make_loader(data, config, shuffle=True)
    return Workload(model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3), loader=loader,
                    loss_fn=_classify)


class TokenMLP(nn.Module):
    """Blocks of token-wise MLPs with a wide hidden layer: activations dominate memory."""

    def __init__(self, dim: int = 4, hidden: int = 1024, depth: int = 3, checkpointing: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(),
                                                  nn.Linear(hidden, dim)) for _ in range(depth))
        self.head = nn.Linear(dim, 10)
        self.checkpointing = checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.checkpointing and self.training:
                x = x + checkpoint(block, x, use_reentrant=False)
            else:
                x = x + block(x)
        return self.head(x.mean(dim=1))


def build_memory_limited(config: Mapping[str, object], seq: int = 256) -> Workload:
    model = TokenMLP(checkpointing=bool(config.get("activation_checkpointing", False)))
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(128, seq, 4, generator=g),
                                          torch.randint(0, 10, (128,), generator=g))
    loader = make_loader(data, config, shuffle=True)
    return Workload(model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3), loader=loader,
                    loss_fn=_classify)


def _classify(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x).float(), y)
