"""One rank of the exactly-once check in test_packing_streaming_ranks.py (run by torchrun, never collected).

Each rank streams the same 600 documents through PackedIterableDataset with 2 DataLoader workers, for
2 epochs, and writes what it received: per epoch, (stream index, first token, length) of every piece.
"""

import json
import sys

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader

from throughput.packing import PackedIterableDataset

ROW_LEN, DOCS = 64, 600


def make_docs() -> list[list[int]]:
    """Document d has 1..150 tokens (some longer than a row, so they are split); token k is d * 1000 + k."""
    lengths = np.random.default_rng(11).integers(1, 151, DOCS)
    return [[d * 1000 + k for k in range(int(n))] for d, n in enumerate(lengths)]


def pieces(rows: list[dict]) -> list[dict]:
    return rows                                              # collate: keep the rows as they are


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    ds = PackedIterableDataset(make_docs(), ROW_LEN, buffer_size=32, seed=3, rank=rank, world_size=world,
                               chunk_docs=16)
    epochs = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        got = []
        for batch in DataLoader(ds, batch_size=4, num_workers=2, collate_fn=pieces):
            for row in batch:
                ids, at = row["input_ids"].tolist(), 0
                for index, n in zip(row["doc_index"].tolist(), row["seq_lens"].tolist()):
                    got.append([index, ids[at], n])
                    at += n
        epochs.append(got)
    with open(out.format(rank=rank), "w") as f:
        json.dump(epochs, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
