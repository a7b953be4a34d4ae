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

from throughput.packing.algorithms import pack_lengths
from throughput.packing.online import OnlinePacker, PackedRows
from throughput.packing.plan import IntArray, expand

STRATEGIES = ("bfd", "bfd_split", "wrapped")
Columns = dict[str, tuple[Any, IntArray]]        # name -> (flat values: numpy or Arrow array, offsets int64)


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


def pack_columns(columns: Columns, seq_length: int, strategy: str) -> tuple[Columns, IntArray | None, IntArray]:
    """Plan and gather: (packed columns, the ``seq_lengths`` values or None for "wrapped", row offsets
    into them). Examples must be non-empty."""
    first = next(iter(columns.values()))[1]
    lengths = np.diff(first)
    if strategy == "wrapped":
        total = int(first[-1])
        offsets = np.append(np.arange(0, total, seq_length, dtype=np.int64), total)
        return {name: (values, offsets) for name, (values, _) in columns.items()}, None, offsets
    plan = pack_lengths(lengths, seq_length, overflow="truncate" if strategy == "bfd" else "split")
    src = first[plan.doc_index] + plan.doc_start
    out_offsets = np.concatenate([[0], np.cumsum(plan.row_fill())]).astype(np.int64)
    return gather(columns, src, plan.length, out_offsets), plan.length, plan.row_offsets


def gather(columns: Columns, src_start: IntArray, length: IntArray, out_offsets: IntArray) -> Columns:
    """The pieces (``src_start``, ``length``, in flat positions) of every column, concatenated, with
    ``out_offsets`` as the new list offsets. ``take`` keeps each column's value type (numpy or Arrow)."""
    total = int(length.sum())
    positions = expand(src_start - (np.cumsum(length) - length), length) + np.arange(total, dtype=np.int64)
    return {name: (values.take(positions), out_offsets) for name, (values, _) in columns.items()}


def check_columns(columns: Columns) -> None:
    """Every column has the same example lengths as the first (TRL's rule)."""
    names = list(columns)
    first = columns[names[0]][1]
    for name in names[1:]:
        if not np.array_equal(columns[name][1] - columns[name][1][0], first - first[0]):
            raise ValueError(f"column {name!r} has other lengths than {names[0]!r}: all columns are packed "
                             f"together, so they must hold the same number of values per example")


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


def stream_rows(batches: Iterator[Columns], seq_length: int, strategy: str, *, buffer_size: int,
                seed: int) -> Iterator[tuple[Columns, IntArray | None, IntArray]]:
    """Packed batches of rows, as ``pack_columns`` returns them, from a stream of column batches
    (non-empty examples, offsets from 0): ``OnlinePacker`` for the BFD strategies, a carried
    remainder for "wrapped". Memory: the examples still waiting in the packer, plus one batch."""
    if strategy == "wrapped":
        yield from _stream_wrapped(batches, seq_length)
        return
    packer = OnlinePacker(seq_length, buffer_size=buffer_size, seed=seed,
                          overflow="truncate" if strategy == "bfd" else "split")
    waiting: Columns | None = None
    ids = np.zeros(0, dtype=np.int64)                       # packer doc id of each waiting example
    for batch in batches:
        lengths = np.diff(next(iter(batch.values()))[1])
        ids = np.concatenate([ids, packer.docs_seen + np.arange(len(lengths), dtype=np.int64)])
        waiting = batch if waiting is None else _concat(waiting, batch)
        out = _rows(waiting, ids, packer.extend(lengths))
        waiting, ids = _keep(waiting, ids, packer.pending_doc_ids())
        if out is not None:
            yield out
    if waiting is not None:
        out = _rows(waiting, ids, packer.flush())
        if out is not None:
            yield out


def _rows(waiting: Columns, ids: IntArray, rows: PackedRows) -> tuple[Columns, IntArray, IntArray] | None:
    if rows.num_rows == 0:
        return None
    offsets = next(iter(waiting.values()))[1]
    src = offsets[np.searchsorted(ids, rows.doc_id)] + rows.doc_start
    fills = np.add.reduceat(rows.length, rows.row_offsets[:-1])
    out_offsets = np.concatenate([[0], np.cumsum(fills)]).astype(np.int64)
    return gather(waiting, src, rows.length, out_offsets), rows.length, rows.row_offsets


def _keep(waiting: Columns, ids: IntArray, pending: IntArray) -> tuple[Columns, IntArray]:
    """Only the examples that still have pieces in the packer."""
    offsets = next(iter(waiting.values()))[1]
    pos = np.searchsorted(ids, pending)
    lengths = offsets[pos + 1] - offsets[pos]
    new_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return gather(waiting, offsets[pos], lengths, new_offsets), pending


def _stream_wrapped(batches: Iterator[Columns], seq_length: int) -> Iterator[tuple[Columns, None, IntArray]]:
    carry: Columns | None = None
    for batch in batches:
        carry = batch if carry is None else _concat(carry, batch)
        total = int(next(iter(carry.values()))[1][-1])
        full = total // seq_length * seq_length
        if full:
            offsets = np.arange(0, full + 1, seq_length, dtype=np.int64)
            yield gather(carry, np.zeros(1, np.int64), np.array([full]), offsets), None, offsets
            rest = np.array([total - full])
            carry = gather(carry, np.array([full]), rest, np.array([0, total - full]))
    if carry is not None:
        total = int(next(iter(carry.values()))[1][-1])
        if total:
            offsets = np.array([0, total], dtype=np.int64)
            yield carry, None, offsets


def _concat(a: Columns, b: Columns) -> Columns:
    out: Columns = {}
    for name, (values, offsets) in a.items():
        other, other_offsets = b[name]
        if isinstance(values, np.ndarray):
            joined = np.concatenate([values, other])
        else:
            import pyarrow as pa
            joined = pa.concat_arrays([values, other])
        out[name] = (joined, np.concatenate([offsets, other_offsets[1:] + offsets[-1]]))
    return out
