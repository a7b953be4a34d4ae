"""Imported once by the probe server (``throughput.advisor.isolate``): one tiny training step in fp32
and, where supported, bf16 autocast, single-threaded. Process-wide one-time costs (library loading,
oneDNN and autograd initialisation, bf16 kernel dispatch) are then paid in the server, and every probe
child forked from it starts warm. Single-threaded on purpose: a process whose OpenMP pool never ran
parallel work forks safely; the children set their own thread count."""

from __future__ import annotations

import torch


def prime() -> None:
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.LayerNorm(8), torch.nn.Linear(8, 64), torch.nn.GELU(),
                                torch.nn.Linear(64, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for dtype in (None, torch.bfloat16):
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = model(torch.randn(4, 16, 8)).mean(dim=1)
        torch.nn.functional.cross_entropy(out.float(), torch.arange(4)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


prime()
