"""Token storage for packing: all documents in one flat int64 array plus offsets (CSR). Torch-free.

Documents may be Python lists/tuples of ints, 1-D integer numpy arrays or CPU tensors, or mappings with
``input_ids`` and optionally ``labels`` (same length; -100 marks a token that bears no loss, as in a
completion-only mask). Converting Python lists is the slow part of any packer (about 15 ns a token
here), so it is done once, with one C-level pass per check.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from throughput.packing.plan import IntArray, expand


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenStore:
    """Tokens of document ``i`` are ``ids[offsets[i]:offsets[i + 1]]``; ``labels`` (or None) alike."""

    ids: IntArray
    offsets: IntArray
    labels: IntArray | None = None

    def __post_init__(self) -> None:
        if self.offsets.ndim != 1 or len(self.offsets) < 2 or self.offsets[0] != 0:
            raise ValueError("offsets must be 1-D, start at 0 and describe at least one document")
        if self.offsets[-1] != len(self.ids):
            raise ValueError(f"offsets end at {self.offsets[-1]} but there are {len(self.ids)} tokens")
        if self.labels is not None and self.labels.shape != self.ids.shape:
            raise ValueError(f"labels hold {len(self.labels)} tokens but input_ids hold {len(self.ids)}")

    @property
    def lengths(self) -> IntArray:
        return np.diff(self.offsets)

    def gather(self, doc_index: IntArray, doc_start: IntArray, length: IntArray) -> tuple[IntArray, IntArray | None]:
        """Tokens (and labels) of the given pieces, concatenated in the given order."""
        out_start = np.cumsum(length) - length
        src = expand(self.offsets[doc_index] + doc_start - out_start, length)
        src += np.arange(len(src), dtype=np.int64)
        return self.ids[src], (None if self.labels is None else self.labels[src])


def tokens_from_flat(ids: Any, offsets: Any, labels: Any = None) -> TokenStore:
    """A store over existing flat arrays (e.g. an Arrow list column's values and offsets), no Python loop."""
    flat = _int_array(np.asarray(ids), "input_ids")
    offs = _int_array(np.asarray(offsets), "offsets")
    lab = None if labels is None else _int_array(np.asarray(labels), "labels")
    store = TokenStore(ids=flat, offsets=offs, labels=lab)
    _check_store(store)
    return store


def tokens_from_docs(docs: Sequence[Any]) -> TokenStore:
    """Flatten documents (see the module docstring). ValueError names the first bad document."""
    if isinstance(docs, (str, bytes)) or not hasattr(docs, "__len__"):
        raise ValueError(f"docs must be a sequence of token sequences, got {type(docs).__name__}")
    docs = docs if isinstance(docs, list) else list(docs)
    if not docs:
        raise ValueError("docs is empty: there is nothing to pack (pass at least one document)")
    if isinstance(docs[0], Mapping):
        ids_docs, label_docs = _split_mappings(docs)
    else:
        ids_docs, label_docs = docs, None
    ids, offsets = _flatten(ids_docs, "input_ids")
    labels = None
    if label_docs is not None:
        labels, label_offsets = _flatten(label_docs, "labels")
        if not np.array_equal(label_offsets, offsets):
            bad = int(np.flatnonzero(np.diff(label_offsets) != np.diff(offsets))[0])
            raise ValueError(f"document {bad}: labels and input_ids differ in length")
    store = TokenStore(ids=ids, offsets=offsets, labels=labels)
    _check_store(store)
    return store


def _split_mappings(docs: list[Any]) -> tuple[list[Any], list[Any] | None]:
    try:
        ids_docs = [d["input_ids"] for d in docs]
    except (KeyError, TypeError) as e:
        raise ValueError("every document mapping needs an 'input_ids' entry") from e
    with_labels = [isinstance(d, Mapping) and d.get("labels") is not None for d in docs]
    if any(with_labels) and not all(with_labels):
        raise ValueError(f"document {with_labels.index(False)} has no labels while others do: give all or none")
    return ids_docs, ([d["labels"] for d in docs] if all(with_labels) else None)


def _flatten(seqs: list[Any], what: str) -> tuple[IntArray, IntArray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    try:
        np.cumsum(np.fromiter(map(len, seqs), np.int64, count=len(seqs)), out=offsets[1:])
    except TypeError as e:
        raise ValueError(f"every document's {what} must be a sequence of token ids: {e}") from e
    if all(type(s) in (list, tuple) for s in seqs):
        for i, s in enumerate(seqs):
            # One C-level pass: a float (or any non-int) anywhere makes the sum a non-int; text raises.
            try:
                total = sum(s)
            except TypeError:
                total = None
            if not isinstance(total, (int, np.integer)):
                raise ValueError(f"document {i}: {what} must be integer token ids, found {_first_bad(s)!r}")
        flat = np.fromiter(itertools.chain.from_iterable(seqs), np.int64, count=int(offsets[-1]))
        return flat, offsets
    arrays = [np.asarray(s) for s in seqs]
    for i, a in enumerate(arrays):
        if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or (a.size == 0 and a.dtype == np.float64)):
            raise ValueError(f"document {i}: {what} must be a 1-D sequence of integer token ids, "
                             f"got shape {a.shape} dtype {a.dtype}")
    return np.concatenate(arrays).astype(np.int64, copy=False), offsets


def _first_bad(seq: Sequence[Any]) -> Any:
    return next((x for x in seq if not isinstance(x, (int, np.integer))), None)


def _int_array(a: np.ndarray, what: str) -> IntArray:
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what} must be a 1-D integer array, got shape {a.shape} dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _check_store(store: TokenStore) -> None:
    lengths = store.lengths
    empty = np.flatnonzero(lengths < 1)
    if empty.size:
        raise ValueError(f"document {empty[0]} has no tokens ({empty.size} empty documents); filter them out first")
    if len(store.ids) and store.ids.min() < 0:
        bad = int(np.flatnonzero(store.ids < 0)[0])
        raise ValueError(f"token ids must be >= 0, found {store.ids[bad]} at flat position {bad}")
