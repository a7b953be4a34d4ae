"""Sequence packing: near-full rows, fast planning, and no attention across document boundaries.

Plan on lengths (torch-free), then build tensors::

    plan = pack_lengths(lengths, row_len=2048)            # rows as CSR arrays + plan.stats
    batch, plan = pack_to_tensors(token_lists, 2048)       # input_ids, labels, position_ids, cu_seqlens
    loader = DataLoader(PackedDataset(docs, 2048), batch_size=8, collate_fn=PackingCollator(2048))
    packed = pack_dataset(hf_dataset, 2048)                # drop-in for trl.pack_dataset

See docs/packing.md.
"""

from throughput.packing.algorithms import ALGORITHMS, exact_bfd, histogram_bfd, pack_lengths
from throughput.packing.hf import pack_dataset
from throughput.packing.online import OnlinePacker, PackedRows
from throughput.packing.plan import OVERFLOW_POLICIES, PackingPlan, PackingStats
from throughput.packing.tokens import TokenStore, tokens_from_docs, tokens_from_flat

__all__ = ["ALGORITHMS", "OVERFLOW_POLICIES", "OnlinePacker", "PackedDataset", "PackedIterableDataset",
           "PackedRows", "PackingCollator", "PackingPlan", "PackingStats", "TokenStore", "block_causal_mask", "build_batch",
           "exact_bfd", "histogram_bfd", "loss_token_count", "normalize_loss", "normalized_loss", "pack_dataset", "pack_lengths",
           "pack_to_tensors", "token_loss_sum", "tokens_from_docs", "tokens_from_flat", "window_loss_tokens"]

_TORCH_NAMES = {
    "PackingCollator": "collate", "block_causal_mask": "collate", "build_batch": "collate",
    "pack_to_tensors": "collate", "PackedDataset": "dataset", "PackedIterableDataset": "dataset",
    "loss_token_count": "loss", "normalize_loss": "loss", "normalized_loss": "loss", "token_loss_sum": "loss",
    "window_loss_tokens": "loss",
}


def __getattr__(name: str) -> object:
    # The planning half is torch-free; torch is imported only when a tensor-side name is used.
    if name in _TORCH_NAMES:
        import importlib
        return getattr(importlib.import_module(f"throughput.packing.{_TORCH_NAMES[name]}"), name)
    raise AttributeError(f"module 'throughput.packing' has no attribute {name!r}")
