"""Worker for benchmarks/packing.py: runs inside benchmarks/.venv-trl (TRL + throughput) and times,
interleaved in one process, two pairs with the same output on each side, from two starting points
(Python token lists; an already built Arrow dataset, whose column ours reads without copying):

- ``flat``: packed rows as flat tensors (token ids + sequence lengths). Ours: ``pack_lengths`` and a
  gather. TRL: ``pack_dataset(strategy="bfd")`` and its columns as tensors.
- ``train``: training tensors (input_ids, labels with document starts masked, position_ids,
  cu_seqlens). Ours: ``pack_to_tensors``. TRL: ``pack_dataset`` then its padding-free
  ``DataCollatorForLanguageModeling`` over batches of 8 rows.

Both truncate documents longer than the row (TRL's "bfd" does). Also times the floors of the
Python-lists start: reading every token once (a bare ``sum``), ``np.fromiter`` over all tokens, and our
validated conversion alone (``tokens_from_docs``). Prints one JSON line.

This machine is a VM that hands freed memory back to its host; the first touch of such memory costs up
to ~10x more than of memory the guest kept, so a run right after a big free (TRL's tables, our arrays)
paid for the previous variant. Before every timed call, on both sides, the worker therefore touches and
frees a scratch buffer (``--scratch-mb``, untimed), so that every call starts from the same memory state.
Torch runs with one intra-op thread (see ``main``).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import statistics
import time
from typing import Any, Callable

import numpy as np

Variant = Callable[[], tuple[int, int]]          # returns (rows, tokens packed)


def make_docs(n: int, seed: int) -> list[list[int]]:
    from benchmarks.packing import lognormal_lengths
    lengths = lognormal_lengths(n, seed)
    ids = np.random.default_rng(seed + 1).integers(0, 50_000, int(lengths.sum()))
    return [x.tolist() for x in np.split(ids, np.cumsum(lengths)[:-1])]


def ours_variants(docs: list[list[int]], prebuilt: Any, row_len: int) -> dict[str, Variant]:
    import torch

    from throughput.packing import pack_lengths, pack_to_tensors, tokens_from_docs, tokens_from_flat

    def arrow_store() -> Any:
        column = prebuilt.data.column("input_ids")      # one chunk: read in place (combine_chunks copies it)
        col = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        return tokens_from_flat(col.values.to_numpy(), col.offsets.to_numpy())

    def flat(store: Any) -> tuple[int, int]:
        plan = pack_lengths(store.lengths, row_len, overflow="truncate")
        ids, _ = store.gather(plan.doc_index, plan.doc_start, plan.length)
        torch.from_numpy(ids), torch.from_numpy(plan.length)
        return plan.num_rows, len(ids)

    def train(store: Any) -> tuple[int, int]:
        batch, plan = pack_to_tensors(store, row_len, overflow="truncate")
        return int(batch["input_ids"].shape[0]), plan.stats.tokens_packed

    return {"ours_lists_flat": lambda: flat(tokens_from_docs(docs)), "ours_arrow_flat": lambda: flat(arrow_store()),
            "ours_lists_train": lambda: train(tokens_from_docs(docs)), "ours_arrow_train": lambda: train(arrow_store())}


def trl_variants(docs: list[list[int]], prebuilt: Any, row_len: int) -> dict[str, Variant]:
    import datasets
    import torch
    from trl import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)

    def flat(packed: Any) -> tuple[int, int]:
        table = packed.with_format("arrow")[:]
        col = table["input_ids"].combine_chunks()
        ids = torch.from_numpy(col.values.to_numpy(zero_copy_only=False))
        torch.from_numpy(table["seq_lengths"].combine_chunks().values.to_numpy(zero_copy_only=False))
        return len(col), len(ids)

    def train(packed: Any) -> tuple[int, int]:
        rows, tokens = packed.with_format(None), 0
        for i in range(0, len(rows), 8):
            ex = rows[i:i + 8]
            batch = collator([{"input_ids": a, "seq_lengths": b} for a, b in zip(ex["input_ids"], ex["seq_lengths"])])
            tokens += batch["input_ids"].numel()
        return len(rows), tokens

    def from_lists() -> Any:
        return pack_dataset(datasets.Dataset.from_dict({"input_ids": docs}), row_len, strategy="bfd")

    return {"trl_lists_flat": lambda: flat(from_lists()),
            "trl_arrow_flat": lambda: flat(pack_dataset(prebuilt, row_len, strategy="bfd")),
            "trl_lists_train": lambda: train(from_lists()),
            "trl_arrow_train": lambda: train(pack_dataset(prebuilt, row_len, strategy="bfd"))}


def dropin_variants(prebuilt: Any, row_len: int) -> dict[str, Variant]:
    """``throughput.packing.pack_dataset`` against ``trl.pack_dataset`` ("bfd"), same call, same input:
    to a packed ``Dataset``, and through a streamed ``IterableDataset`` (every row read)."""
    import pyarrow.compute as pc
    from trl import pack_dataset as trl_pack

    from throughput.packing import pack_dataset

    stream = prebuilt.to_iterable_dataset(num_shards=1)

    def table_shape(ds: Any) -> tuple[int, int]:
        return len(ds), int(pc.sum(pc.list_value_length(ds.data.column("input_ids"))).as_py())

    def stream_shape(ds: Any) -> tuple[int, int]:
        rows = list(ds)
        return len(rows), sum(len(r["input_ids"]) for r in rows)

    return {"ours_dropin_dataset": lambda: table_shape(pack_dataset(prebuilt, row_len)),
            "trl_dropin_dataset": lambda: table_shape(trl_pack(prebuilt, row_len)),
            "ours_dropin_stream": lambda: stream_shape(pack_dataset(stream, row_len)),
            "trl_dropin_stream": lambda: stream_shape(trl_pack(stream, row_len))}


def floor_variants(docs: list[list[int]], row_len: int) -> dict[str, Variant]:
    """Lower bounds of the flat rows: any conversion of the Python lists (reading every int once: a bare
    ``sum``; ``np.fromiter``), our conversion alone, our planning alone, our gather of the packed tokens
    alone, and one plain copy of the int64 tokens."""
    from throughput.packing import pack_lengths, tokens_from_docs
    total = sum(map(len, docs))
    store = tokens_from_docs(docs)
    plan = pack_lengths(store.lengths, row_len, overflow="truncate")
    return {"floor_sum": lambda: (0, sum(map(sum, docs))),
            "floor_fromiter": lambda: (0, len(np.fromiter(itertools.chain.from_iterable(docs), np.int64, count=total))),
            "ours_ingest": lambda: (0, len(tokens_from_docs(docs).ids)),
            "ours_plan": lambda: (pack_lengths(store.lengths, row_len, overflow="truncate").num_rows, 0),
            "ours_gather": lambda: (0, len(store.gather(plan.doc_index, plan.doc_start, plan.length)[0])),
            "copy_tokens": lambda: (0, len(store.ids.copy()))}


def settle(scratch_mb: int) -> None:
    """Untimed, before every timed call: collect garbage, then touch and free the scratch buffer."""
    gc.collect()
    if scratch_mb:
        np.ones(scratch_mb << 17).sum()                  # 2**17 float64 = 1 MiB


def measure(runs: dict[str, Variant], repeats: int, *, warmup: bool, scratch_mb: int,
            ours_per_round: int = 1) -> tuple[dict[str, float], dict[str, tuple[int, int]]]:
    """Median seconds per variant over interleaved rounds; in each round our (cheap) variants run
    ``ours_per_round`` times so their median resists the noise of a shared machine."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    shape: dict[str, tuple[int, int]] = {}
    for rep in range(repeats + int(warmup)):
        for name, fn in runs.items():                    # interleaved: every variant in every round
            for _ in range(ours_per_round if name.startswith("ours_") else 1):
                settle(scratch_mb)                       # the previous variant's garbage is not this one's to pay
                t0 = time.perf_counter()
                shape[name] = fn()
                if rep or not warmup:
                    times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, shape


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, required=True)
    ap.add_argument("--row-len", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--scratch-mb", type=int, default=1024)
    args = ap.parse_args()
    import datasets
    import torch
    import trl
    # TRL's collator runs many small torch ops; with 2 intra-op threads on this shared 2-core machine they
    # contend with other jobs (3x slower under load, measured). One thread on both sides (ours is numpy,
    # single-threaded anyway) keeps TRL's side at its best here.
    torch.set_num_threads(1)
    datasets.disable_progress_bars()
    datasets.disable_caching()
    docs = make_docs(args.docs, args.seed)
    prebuilt = datasets.Dataset.from_dict({"input_ids": docs})
    runs = {**ours_variants(docs, prebuilt, args.row_len), **trl_variants(docs, prebuilt, args.row_len)}
    # The flat pair is cheap: a warm-up round, then `repeats` rounds. The training pair is dominated by
    # TRL's collator (seconds per run at 20k documents): `train_repeats` rounds, no warm-up (the flat
    # rounds already warmed the shared code), ours 3 times per round.
    scratch = args.scratch_mb
    median_s, shape = measure({k: v for k, v in runs.items() if k.endswith("flat")}, args.repeats, warmup=True,
                              scratch_mb=scratch)
    train_s, train_shape = measure({k: v for k, v in runs.items() if k.endswith("train")}, args.train_repeats,
                                   warmup=False, scratch_mb=scratch, ours_per_round=3)
    median_s.update(train_s)
    shape.update(train_shape)
    dropin_s, dropin_shape = measure(dropin_variants(prebuilt, args.row_len), args.train_repeats, warmup=True,
                                     scratch_mb=scratch)
    median_s.update(dropin_s)
    shape.update(dropin_shape)
    floor_s, _ = measure(floor_variants(docs, args.row_len), args.repeats, warmup=True, scratch_mb=scratch)
    out = {"trl_version": trl.__version__, "docs": args.docs, "tokens": sum(map(len, docs)), "row_len": args.row_len,
           "repeats": args.repeats, "train_repeats": args.train_repeats, "scratch_mb": args.scratch_mb,
           "median_s": median_s, "floor_s": floor_s, "rows": {k: v[0] for k, v in shape.items()},
           "utilization": {k: v[1] / (v[0] * args.row_len) for k, v in shape.items()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
