"""FSDP2 (``torch.distributed.fsdp.fully_shard``) on 2 CPU ranks over gloo, run under torchrun: each
block and then the root sharded, 30 updates, and a ``torch.distributed.checkpoint`` save at the end."""

from __future__ import annotations

import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.fsdp import fully_shard

from _common import UpdateCounter, interval, mark_calls, params_sha256, rank, report, seed_all

STEPS, BATCH = 30, 16


def main(workdir: str) -> None:
    dist.init_process_group("gloo")
    seed_all(0)  # same initial weights on both ranks before sharding
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    counter = UpdateCounter()
    counter.attach(opt)
    g = torch.Generator().manual_seed(100 + rank())  # each rank its own data
    x = torch.randn(STEPS * BATCH, 32, generator=g)
    y = x[:, :1] * 0.5 + 0.1 * torch.randn(len(x), 1, generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    mark_calls(dcp, "save", "dcp.save")
    loss = torch.tensor(float("nan"))
    with interval("train"):
        for xb, yb in loader:
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
        dcp.save({"model": model.state_dict()}, checkpoint_id=os.path.join(workdir, "dcp"))
    dist.all_reduce(loss.detach(), op=dist.ReduceOp.AVG)
    full = {k: v.full_tensor() for k, v in model.state_dict().items()}  # gather the shards
    digest_model = nn.Module()
    for k, v in full.items():
        digest_model.register_buffer(k.replace(".", "_"), v)
    report(updates=counter.count, final_loss=loss.item(), digest=params_sha256(digest_model))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
