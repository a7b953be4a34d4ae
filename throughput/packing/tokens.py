"""Token storage for packing: all documents in one flat integer array plus offsets (CSR). Torch-free.

Documents may be Python lists/tuples of ints, 1-D integer numpy arrays or CPU tensors (mixed freely),
or mappings with ``input_ids`` and optionally ``labels`` (same length; -100 marks a token that bears no
loss, as in a completion-only mask). Reading Python ints is the slow part of any packer: each list is
written straight into the flat array by one ``struct.Struct("<n>q").pack_into`` call, which converts
and validates in C (``operator.index`` semantics: ints and numpy integers pass, ``bool`` counts as 0/1,
floats, strings and nested lists raise) at about 9 ns a token on this 2-core machine, against 12 for
``np.fromiter`` (which silently truncates floats) and 4 for the bare ``sum`` of the same lists, the
cost of reading every int once (benchmarks/packing.py measures all three).
"""

from __future__ import annotations

import functools
import operator
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from throughput.packing.plan import IntArray, expand


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenStore:
    """Tokens of document ``i`` are ``ids[offsets[i]:offsets[i + 1]]``; ``labels`` (or None) alike.
    ``ids``/``labels`` are int64, or int32 when ``tokens_from_flat`` was given int32 (Arrow's token
    columns often are): kept as they are, not copied; everything taken out of the store is int64."""

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
        """Tokens (and labels) of the given pieces, concatenated in the given order, as int64."""
        src_start, dest = self.offsets[doc_index] + doc_start, np.cumsum(length) - length
        size = int(length.sum())
        return (copy_runs(self.ids, src_start, length, dest, size),
                None if self.labels is None else copy_runs(self.labels, src_start, length, dest, size))


def tokens_from_flat(ids: Any, offsets: Any, labels: Any = None) -> TokenStore:
    """A store over existing flat arrays (e.g. an Arrow list column's values and offsets), no Python loop.
    int32 and int64 token arrays are used in place; other integer types are converted to int64."""
    flat = _int_array(np.asarray(ids), "input_ids")
    offs = _int_array(np.asarray(offsets), "offsets").astype(np.int64, copy=False)
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
    """(all tokens as one int64 array, offsets). One pass over the documents, no per-token Python;
    ValueError names the first bad document."""
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    try:
        np.cumsum(np.fromiter(map(len, seqs), np.int64, count=len(seqs)), out=offsets[1:])
    except TypeError as e:
        raise ValueError(f"every document's {what} must be a sequence of token ids: {e}") from e
    flat = np.empty(int(offsets[-1]), dtype=np.int64)
    pos = 0
    out = flat.data   # the array's memoryview: struct writes into it (numpy's stubs type ndarray as no Buffer on 3.11)
    for i, s in enumerate(seqs):
        n = len(s)
        if type(s) is list or type(s) is tuple:
            try:
                _int64_struct(n).pack_into(out, 8 * pos, *s)    # converts and type-checks in C
            except struct.error:
                raise ValueError(f"document {i}: {what} must be integer token ids, {_first_bad(s)}") from None
        else:
            flat[pos:pos + n] = _int_doc(s, i, what)
        pos += n
    return flat, offsets


@functools.lru_cache(maxsize=4096)
def _int64_struct(n: int) -> struct.Struct:
    return struct.Struct(f"{n}q")


def _int_doc(doc: Any, i: int, what: str) -> IntArray:
    a = np.asarray(doc)
    if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
        raise ValueError(f"document {i}: {what} must be a 1-D sequence of integer token ids, "
                         f"got shape {a.shape} dtype {a.dtype}")
    return a


def _first_bad(seq: Sequence[Any]) -> str:
    """Why ``struct`` refused ``seq`` (error path only): its first non-integer or out-of-range token."""
    for x in seq:
        try:
            v = operator.index(x)
        except TypeError:
            return f"found {x!r}"
        if not -2**63 <= v < 2**63:
            return f"found {v}, which does not fit in 64 bits"
    return "found none (a token changed during the conversion?)"


def copy_runs(src: IntArray, src_start: IntArray, lens: IntArray, dest: IntArray, size: int) -> IntArray:
    """out[dest[p]:dest[p] + lens[p]] = src[src_start[p]:...] in a new int64 array of ``size``. Runs
    that are contiguous on both sides are merged; long runs are copied slice by slice (memcpy), short
    ones with one vectorised gather."""
    out = np.empty(size, dtype=np.int64)
    if len(lens) == 0:
        return out
    brk = np.flatnonzero((src_start[1:] != src_start[:-1] + lens[:-1]) | (dest[1:] != dest[:-1] + lens[:-1])) + 1
    run = np.concatenate([[0], brk])
    run_len = np.add.reduceat(lens, run)
    s0, d0 = src_start[run], dest[run]
    if run_len.mean() >= 64:       # ~1 us of Python per slice beats ~8 ns per token of index arithmetic
        for s, d, n in zip(s0.tolist(), d0.tolist(), run_len.tolist()):
            out[d:d + n] = src[s:s + n]
    else:
        tok = np.arange(int(run_len.sum()), dtype=np.int64)
        run_first = np.cumsum(run_len) - run_len
        out[expand(d0 - run_first, run_len) + tok] = src[expand(s0 - run_first, run_len) + tok]
    return out


def _int_array(a: np.ndarray, what: str) -> IntArray:
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{what} must be a 1-D integer array, got shape {a.shape} dtype {a.dtype}")
    return a if a.dtype in (np.int32, np.int64) else a.astype(np.int64)


def _check_store(store: TokenStore) -> None:
    lengths = store.lengths
    empty = np.flatnonzero(lengths < 1)
    if empty.size:
        raise ValueError(f"document {empty[0]} has no tokens ({empty.size} empty documents); filter them out first")
    if len(store.ids) and store.ids.min() < 0:
        bad = int(np.flatnonzero(store.ids < 0)[0])
        raise ValueError(f"token ids must be >= 0, found {store.ids[bad]} at flat position {bad}")
