"""Worker for benchmarks/packing.py: runs inside benchmarks/.venv-trl (which has TRL and throughput) and
times, interleaved in one process, the whole path from token lists to packed tensors:

- ``ours_lists``: ``pack_to_tensors(lists)`` -> input_ids, labels, position_ids [rows, row_len], cu_seqlens.
- ``trl_lists``: ``Dataset.from_dict`` + ``trl.pack_dataset(strategy="bfd")`` + its columns as tensors
  (flat input_ids and seq_lengths only: less output than ours, in TRL's favour).
- ``ours_arrow`` / ``trl_arrow``: the same, starting from an already built Arrow dataset (ours reads
  the column's values and offsets without copying them).
- ``trl_*_collated``: TRL's own route to the same training tensors as ours (input_ids, labels with
  document starts masked, position_ids, cu_seq_lens): pack_dataset, then its padding-free
  ``DataCollatorForLanguageModeling`` over batches of 8 rows.

Both truncate documents longer than the row (TRL's "bfd" does). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable

import numpy as np


def make_docs(n: int, seed: int) -> list[list[int]]:
    from benchmarks.packing import lognormal_lengths
    lengths = lognormal_lengths(n, seed)
    ids = np.random.default_rng(seed + 1).integers(0, 50_000, int(lengths.sum()))
    return [x.tolist() for x in np.split(ids, np.cumsum(lengths)[:-1])]


def variants(docs: list[list[int]], row_len: int) -> dict[str, Callable[[], tuple[int, int]]]:
    """Each variant returns (rows, tokens packed) so utilization can be compared."""
    import datasets
    import torch
    from trl import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from throughput.packing import pack_to_tensors, tokens_from_flat

    datasets.disable_progress_bars()
    datasets.disable_caching()
    prebuilt = datasets.Dataset.from_dict({"input_ids": docs})
    collator = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)

    def trl_tensors(packed: Any) -> tuple[int, int]:
        table = packed.with_format("arrow")[:]
        col = table["input_ids"].combine_chunks()
        ids = torch.from_numpy(col.values.to_numpy(zero_copy_only=False))
        torch.from_numpy(table["seq_lengths"].combine_chunks().values.to_numpy(zero_copy_only=False))
        return len(col), len(ids)

    def trl_collated(packed: Any) -> tuple[int, int]:
        """TRL's own route to training tensors: its padding-free collator over batches of 8 rows."""
        rows, tokens = packed.with_format(None), 0
        for i in range(0, len(rows), 8):
            ex = rows[i:i + 8]
            batch = collator([{"input_ids": a, "seq_lengths": b} for a, b in zip(ex["input_ids"], ex["seq_lengths"])])
            tokens += batch["input_ids"].numel()
        return len(rows), tokens

    def ours(source: Any) -> tuple[int, int]:
        batch, plan = pack_to_tensors(source, row_len, overflow="truncate")
        return int(batch["input_ids"].shape[0]), plan.stats.tokens_packed

    def ours_arrow() -> tuple[int, int]:
        col = prebuilt.data.column("input_ids").combine_chunks()
        return ours(tokens_from_flat(col.values.to_numpy(), col.offsets.to_numpy()))

    return {
        "ours_lists": lambda: ours(docs),
        "trl_lists": lambda: trl_tensors(pack_dataset(datasets.Dataset.from_dict({"input_ids": docs}), row_len,
                                                      strategy="bfd")),
        "ours_arrow": ours_arrow,
        "trl_arrow": lambda: trl_tensors(pack_dataset(prebuilt, row_len, strategy="bfd")),
        "trl_lists_collated": lambda: trl_collated(pack_dataset(datasets.Dataset.from_dict({"input_ids": docs}),
                                                                row_len, strategy="bfd")),
        "trl_arrow_collated": lambda: trl_collated(pack_dataset(prebuilt, row_len, strategy="bfd")),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, required=True)
    ap.add_argument("--row-len", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    import trl
    docs = make_docs(args.docs, args.seed)
    runs = variants(docs, args.row_len)
    times: dict[str, list[float]] = {k: [] for k in runs}
    shape: dict[str, tuple[int, int]] = {}
    for rep in range(args.repeats + 1):                     # rep 0 is a warm-up, not recorded
        for name, fn in runs.items():                       # interleaved A/B/C/D
            t0 = time.perf_counter()
            shape[name] = fn()
            if rep:
                times[name].append(time.perf_counter() - t0)
    out = {"trl_version": trl.__version__, "docs": args.docs, "tokens": sum(map(len, docs)), "row_len": args.row_len,
           "repeats": args.repeats, "median_s": {k: statistics.median(v) for k, v in times.items()},
           "rows": {k: v[0] for k, v in shape.items()},
           "utilization": {k: v[1] / (v[0] * args.row_len) for k, v in shape.items()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
