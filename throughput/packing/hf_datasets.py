"""Hugging Face ``datasets`` side of ``pack_dataset`` (imported only when such a dataset is passed).

Columns are read from Arrow in place (flat values + offsets, no Python objects), planned and gathered
by ``hf.pack_columns``/``hf.stream_rows``, and written back as Arrow list columns of the input's list
type, with TRL's ``seq_lengths`` (list of int32). The input's format (``with_format``) is kept.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from throughput.packing.hf import Columns, check_columns, pack_columns, stream_rows
from throughput.packing.plan import IntArray

STREAM_BATCH = 1000            # examples read from a streamed dataset at a time


def pack_hf(dataset: Any, seq_length: int, strategy: str, *, buffer_size: int, seed: int) -> Any:
    try:
        import datasets
    except ImportError as e:
        raise ImportError("pip install 'throughput[hf]' (Hugging Face datasets) to pack a datasets object, "
                          "or pass a list of examples") from e
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return type(dataset)({split: pack_hf(ds, seq_length, strategy, buffer_size=buffer_size, seed=seed)
                              for split, ds in dataset.items()})
    if isinstance(dataset, datasets.Dataset):
        return _pack_map_style(dataset, seq_length, strategy)
    if isinstance(dataset, datasets.IterableDataset):
        return _pack_iterable(dataset, seq_length, strategy, buffer_size=buffer_size, seed=seed)
    raise ValueError(f"pack_dataset takes a datasets.Dataset, IterableDataset, DatasetDict, IterableDatasetDict "
                     f"or a list of examples, got {type(dataset).__name__}")


def _pack_map_style(dataset: Any, seq_length: int, strategy: str) -> Any:
    import datasets
    from datasets.table import InMemoryTable
    fmt = _format_of(dataset)
    table = dataset.with_format("arrow")[:]
    columns, list_types = _columns(table)
    if columns is None:
        packed_table = _empty_table(table, strategy)
    else:
        packed_table = _table(*pack_columns(columns, seq_length, strategy), list_types)
    return _with_format(datasets.Dataset(InMemoryTable(packed_table), split=dataset.split), fmt, strategy)


def _pack_iterable(dataset: Any, seq_length: int, strategy: str, *, buffer_size: int, seed: int) -> Any:
    import datasets
    fmt = _format_of(dataset)

    def batches(list_types: dict[str, Any]) -> Iterator[Columns]:
        for table in dataset.with_format("arrow").iter(batch_size=STREAM_BATCH):
            columns, types = _columns(table)
            if columns is not None:
                list_types.update(types)
                yield columns

    def rows() -> Iterator[dict[str, Any]]:
        list_types: dict[str, Any] = {}
        for packed in stream_rows(batches(list_types), seq_length, strategy, buffer_size=buffer_size, seed=seed):
            yield from _table(*packed, list_types).to_pylist()

    features = None
    if dataset.features is not None:
        features = datasets.Features(dict(dataset.features))
        if strategy != "wrapped":
            features["seq_lengths"] = datasets.Sequence(datasets.Value("int32"))
    return _with_format(datasets.IterableDataset.from_generator(rows, features=features), fmt, strategy)


def _columns(table: Any) -> tuple[Columns | None, dict[str, Any]]:
    """List columns as (flat values, offsets from 0), empty examples dropped (TRL drops them);
    None when nothing is left. ValueError for a column that is not a list column."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if table.num_columns == 0:
        raise ValueError("the dataset has no columns to pack")
    for name, column in zip(table.column_names, table.columns):
        if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
            raise ValueError(f"column {name!r} is not a list column ({column.type}): packing needs every column "
                             f"to hold a list per example; drop it first (dataset.remove_columns([{name!r}]))")
    lengths = pc.list_value_length(table.column(0))
    if pc.min(lengths).as_py() == 0:
        table = table.filter(pc.greater(lengths, 0))
    if table.num_rows == 0:
        return None, {}
    columns: Columns = {}
    for name, column in zip(table.column_names, table.columns):
        arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        offsets = arr.offsets.to_numpy().astype(np.int64)
        columns[name] = (arr.flatten(), offsets - offsets[0])      # flatten() honours a sliced array's offset
    check_columns(columns)
    return columns, {name: column.type for name, column in zip(table.column_names, table.columns)}


def _table(packed: Columns, seq_lengths: IntArray | None, seq_offsets: IntArray, list_types: dict[str, Any]) -> Any:
    import pyarrow as pa
    arrays, names = [], []
    for name, (values, offsets) in packed.items():
        large = pa.types.is_large_list(list_types[name])
        cls, dtype = (pa.LargeListArray, np.int64) if large else (pa.ListArray, np.int32)
        arrays.append(cls.from_arrays(pa.array(offsets.astype(dtype)), values))
        names.append(name)
    if seq_lengths is not None:
        arrays.append(pa.ListArray.from_arrays(pa.array(seq_offsets.astype(np.int32)),
                                               pa.array(seq_lengths.astype(np.int32))))
        names.append("seq_lengths")
    return pa.Table.from_arrays(arrays, names=names)


def _empty_table(table: Any, strategy: str) -> Any:
    import pyarrow as pa
    empty = table.slice(0, 0)
    if strategy != "wrapped":
        empty = empty.append_column("seq_lengths", pa.array([], type=pa.list_(pa.int32())))
    return empty


def _format_of(dataset: Any) -> dict[str, Any]:
    """The dataset's ``with_format`` arguments (as TRL reads them)."""
    if hasattr(dataset, "format"):
        fmt = dict(dataset.format)
    else:
        formatting = getattr(dataset, "_formatting", None)
        fmt = {"type": formatting.format_type if formatting is not None else None}
    fmt.update(fmt.pop("format_kwargs", {}) or {})
    return fmt


def _with_format(packed: Any, fmt: dict[str, Any], strategy: str) -> Any:
    fmt = dict(fmt)
    if strategy != "wrapped" and fmt.get("columns"):
        fmt["columns"] = list(fmt["columns"]) + ["seq_lengths"]
    if not hasattr(packed, "format"):                        # IterableDataset.with_format takes the type only
        return packed.with_format(fmt.get("type"))
    return packed.with_format(**fmt)
