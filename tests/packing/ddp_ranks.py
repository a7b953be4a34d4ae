"""One rank of the 2-rank gloo check in test_packing_loss.py (run by torchrun, never collected)."""

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from packing_tiny_lm import TinyLM  # noqa: E402
from test_packing_loss import packed_rows, split_packed  # noqa: E402

from throughput.packing import normalized_loss, window_loss_tokens  # noqa: E402


def main(out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(TinyLM())
    micro = split_packed(split_packed(packed_rows(8), world)[rank], 2)    # 4 rows per rank, accumulation 2
    n = window_loss_tokens([mb["labels"] for mb in micro])                # all-reduced: the global window
    for i, mb in enumerate(micro):
        with model.no_sync() if i < len(micro) - 1 else torch.enable_grad():
            logits = model(mb["input_ids"], mb["position_ids"], mb["attn_mask"])
            normalized_loss(logits, mb["labels"], n).backward()
    if rank == 0:
        torch.save(torch.cat([p.grad.flatten() for p in model.parameters()]), out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
