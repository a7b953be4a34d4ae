"""Device, precision, distributed set-up and the optimizer: the pieces the loop is built from."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
import torch.distributed as dist
from torch import nn

from throughput.hardware import BF16_MIN_CUDA_CAPABILITY
from throughput.loop.config import ConfigError, TrainConfig
from throughput.loop.schedules import Schedule, make_lambda_lr


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime:
    """Where and how this process trains. ``world_size`` > 1 means DDP (launched by torchrun)."""

    device: torch.device
    amp: str                  # resolved: bf16 | fp16 | fp32
    rank: int = 0
    world_size: int = 1
    owns_process_group: bool = False
    saved_tf32: tuple[bool, bool] | None = None   # the process's TF32 flags before tf32 was applied

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> ContextManager[Any]:
        if self.amp == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Resolve the device and precision; join the process group when torchrun launched us."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() if cfg.device == "auto" else cfg.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise ConfigError("device is 'cuda' but CUDA is not available: use device=cpu or device=auto")
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    amp = cfg.amp
    if amp == "auto":   # bf16 only where it runs natively: compute capability 8.0 (Ampere) or newer
        amp = "bf16" if cuda and torch.cuda.get_device_capability(device) >= BF16_MIN_CUDA_CAPABILITY else "fp32"
    if amp == "fp16" and not cuda:
        raise ConfigError("amp=fp16 (with GradScaler) needs CUDA; use amp=bf16 or amp=fp32 on CPU")
    owns = False
    if world > 1 and not dist.is_initialized():
        # gloo on CPU, nccl on CUDA; torchrun provides MASTER_ADDR/PORT, RANK and WORLD_SIZE.
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        owns = True
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
    return Runtime(device=device, amp=amp, rank=rank, world_size=world, owns_process_group=owns, saved_tf32=saved)


def teardown_runtime(rt: Runtime) -> None:
    if rt.saved_tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = rt.saved_tf32
    if rt.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: matrices get ``weight_decay``; norms, biases (any tensor with < 2 dims) and
    embedding tables (also when tied to an output layer) get none."""
    embedding_ids = {id(p) for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))
                     for p in m.parameters(recurse=False)}
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and id(p) not in embedding_ids else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig, rt: Runtime) -> tuple[Any, Any, Any]:
    """(AdamW, LambdaLR, GradScaler). The scaler is enabled only for fp16."""
    # One fused kernel for the whole update on CUDA; multi-tensor (foreach) ops elsewhere.
    fused = rt.device.type == "cuda"
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                                  betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=fused or None,
                                  foreach=None if fused else True)
    schedule = Schedule(kind=cfg.schedule, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps,
                        min_ratio=cfg.min_lr_ratio, pct_start=cfg.pct_start)
    scheduler = make_lambda_lr(optimizer, schedule)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp == "fp16")
    return optimizer, scheduler, scaler


def wrap_ddp(model: nn.Module, rt: Runtime) -> nn.Module:
    if rt.world_size <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(values: list[float], rt: Runtime) -> list[float]:
    """Sum small host numbers over ranks (identity when not distributed)."""
    if rt.world_size <= 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    # Sync point: the caller needs the totals on the host (token counts before backward, logging).
    return [float(v) for v in t.tolist()]
