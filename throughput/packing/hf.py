"""A drop-in for TRL's ``pack_dataset``: same call, same kind of object back, same columns. Torch-free.

``pack_dataset(dataset, seq_length, strategy="bfd")`` takes a Hugging Face ``Dataset``,
``DatasetDict``, ``IterableDataset`` or ``IterableDatasetDict`` (``pip install 'throughput[hf]'``), or
a plain list (of token lists, or of dicts of equal-length lists), and returns the same kind. As in
TRL (checked against TRL 1.16's source and output): every column must be a list column with the
same lengths per example (``input_ids``, ``attention_mask``, ``labels``, ``completion_mask``...);
they are packed together; empty examples are dropped; ``"bfd"`` cuts examples longer than
``seq_length`` to their first ``seq_length`` tokens, ``"bfd_split"`` splits them into chunks of
``seq_length`` (the last one shorter) that are packed like other examples, and both add a
``seq_lengths`` column (int32 lengths of the examples in each row, in row order), from which TRL's
collator builds ``position_ids``; ``"wrapped"`` concatenates everything and cuts rows of exactly
``seq_length`` (no ``seq_lengths``; examples are cut at row ends).

What differs: TRL packs each ``map()`` batch (1000 examples) on its own, with a Python loop per
example; a ``Dataset`` here is planned as a whole (``pack_lengths``, histogram BFD), so it never needs
more rows than TRL and usually fewer, and a streamed one goes through ``OnlinePacker`` with a buffer of
``buffer_size`` examples (not per batch). Rows are ordered as planned, not as TRL orders them;
inside a row, examples keep their input order. ``map_kwargs`` is accepted for compatibility and
ignored (nothing here runs ``map``).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from throughput.packing.columns import Columns, check_columns, pack_columns
from throughput.packing.plan import IntArray

STRATEGIES = ("bfd", "bfd_split", "wrapped")


def pack_dataset(dataset: Any, seq_length: int, strategy: str = "bfd", map_kwargs: Mapping[str, Any] | None = None,
                 *, buffer_size: int = 1024, seed: int = 0) -> Any:
    """Pack ``dataset`` into rows of at most ``seq_length`` tokens (see the module docstring).
    ``buffer_size``/``seed`` apply to streamed datasets (``OnlinePacker``). Raises ValueError on a
    bad strategy, a column that is not a list column, or columns of different lengths."""
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid packing strategy {strategy!r}, must be one of {STRATEGIES}.")
    if isinstance(seq_length, bool) or not isinstance(seq_length, (int, np.integer)) or seq_length < 1:
        raise ValueError(f"seq_length must be an integer >= 1, got {seq_length!r}")
    if isinstance(dataset, list):
        return _pack_list(dataset, int(seq_length), strategy)
    from throughput.packing import hf_datasets
    return hf_datasets.pack_hf(dataset, int(seq_length), strategy, buffer_size=buffer_size, seed=seed)


def _pack_list(examples: list[Any], seq_length: int, strategy: str) -> list[dict[str, list[Any]]]:
    if not examples:
        return []
    rows = [e if isinstance(e, Mapping) else {"input_ids": e} for e in examples]
    rows = [e for e in rows if len(e[next(iter(e))]) > 0]           # TRL drops empty examples
    if not rows:
        return []
    columns = {name: _flatten([e[name] for e in rows], name) for name in rows[0]}
    check_columns(columns)
    packed, seq_lengths, seq_offsets = pack_columns(columns, seq_length, strategy)
    return list(_list_rows(packed, seq_lengths, seq_offsets))


def _flatten(seqs: Sequence[Any], name: str) -> tuple[IntArray, IntArray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    try:
        np.cumsum([len(s) for s in seqs], out=offsets[1:])
    except TypeError:
        raise ValueError(f"column {name!r} is not a list column: packing needs every column to hold a list per "
                         "example (drop the others first)") from None
    values = np.concatenate([np.asarray(s) for s in seqs]) if offsets[-1] else np.zeros(0, np.int64)
    return values, offsets


def _list_rows(packed: Columns, seq_lengths: IntArray | None, seq_offsets: IntArray) -> Iterator[dict[str, list[Any]]]:
    offsets = next(iter(packed.values()))[1]
    for r in range(len(offsets) - 1):
        lo, hi = int(offsets[r]), int(offsets[r + 1])
        row = {name: values[lo:hi].tolist() for name, (values, _) in packed.items()}
        if seq_lengths is not None:
            row["seq_lengths"] = seq_lengths[int(seq_offsets[r]):int(seq_offsets[r + 1])].tolist()
        yield row
