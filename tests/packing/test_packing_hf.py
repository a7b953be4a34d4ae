"""pack_dataset, the drop-in for TRL's: plain lists here; Hugging Face datasets and TRL's own output
where they are installed (benchmarks/.venv-trl: ``python -m pytest -m hf tests/packing``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from throughput.packing import pack_dataset

SEQ = 64


def make_examples(n: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """Example e: 1..100 tokens (some longer than a row), token k = e * 1000 + k; labels mask the first
    third (a completion-only loss); attention_mask all ones; every fifth example empty (dropped)."""
    rng = np.random.default_rng(seed)
    out = []
    for e, n_tok in enumerate(rng.integers(1, 101, n)):
        m = 0 if e % 5 == 4 else int(n_tok)
        ids = [e * 1000 + k for k in range(m)]
        out.append({"input_ids": ids, "attention_mask": [1] * m, "labels": [-100] * (m // 3) + ids[m // 3:]})
    return out


def pieces(rows: list[dict[str, Any]]) -> list[tuple[tuple[int, ...], ...]]:
    """Each packed example (cut from its row by seq_lengths) as (ids, mask, labels), sorted."""
    out = []
    for row in rows:
        at = 0
        for n in list(row["seq_lengths"]):
            out.append(tuple(tuple(int(x) for x in list(row[c])[at:at + n])
                             for c in ("input_ids", "attention_mask", "labels")))
            at += n
        assert at == len(row["input_ids"]) <= SEQ
    return sorted(out)


def expected_pieces(examples: list[dict[str, list[int]]], split: bool) -> list[tuple[tuple[int, ...], ...]]:
    out = []
    for ex in examples:
        m = len(ex["input_ids"])
        starts = range(0, m, SEQ) if split else range(0, min(m, 1))
        for s in starts:
            out.append(tuple(tuple(ex[c][s:s + SEQ]) for c in ("input_ids", "attention_mask", "labels")))
    return sorted(out)


@pytest.mark.parametrize("strategy", ["bfd", "bfd_split"])
def test_lists_keep_every_token_once_with_seq_lengths(strategy: str) -> None:
    examples = make_examples(300)
    rows = pack_dataset(examples, SEQ, strategy=strategy)
    assert set(rows[0]) == {"input_ids", "attention_mask", "labels", "seq_lengths"}
    assert pieces(rows) == expected_pieces(examples, split=strategy == "bfd_split")
    tokens = sum(min(len(e["input_ids"]), SEQ) if strategy == "bfd" else len(e["input_ids"]) for e in examples)
    assert len(rows) <= -(-tokens // SEQ) + 2          # BFD on 240 examples: within 2 rows of the bound


def test_lists_wrapped_concatenates_and_cuts() -> None:
    examples = make_examples(50)
    rows = pack_dataset([e["input_ids"] for e in examples], SEQ, strategy="wrapped")
    flat = [t for e in examples for t in e["input_ids"]]
    assert [len(r["input_ids"]) for r in rows[:-1]] == [SEQ] * (len(rows) - 1)
    assert [t for r in rows for t in r["input_ids"]] == flat and "seq_lengths" not in rows[0]


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(0, 40), max_size=60), seq=st.integers(1, 32),
       strategy=st.sampled_from(["bfd", "bfd_split", "wrapped"]))
def test_lists_conserve_tokens(lengths: list[int], seq: int, strategy: str) -> None:
    docs = [[d * 100 + k for k in range(n)] for d, n in enumerate(lengths)]
    rows = pack_dataset(docs, seq, strategy=strategy)
    kept = sorted(t for r in rows for t in r["input_ids"])
    cut = {"bfd": lambda d: d[:seq], "bfd_split": lambda d: d, "wrapped": lambda d: d}[strategy]
    assert kept == sorted(t for d in docs for t in cut(d))
    assert all(0 < len(r["input_ids"]) <= seq for r in rows)
    if strategy != "wrapped":
        assert all(sum(r["seq_lengths"]) == len(r["input_ids"]) for r in rows)


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="Invalid packing strategy 'best'"):
        pack_dataset([[1]], 4, strategy="best")
    with pytest.raises(ValueError, match="column 'attention_mask' has other lengths than 'input_ids'"):
        pack_dataset([{"input_ids": [1, 2], "attention_mask": [1]}], 4)
    with pytest.raises(ValueError, match="column 'source' is not a list column"):
        pack_dataset([{"input_ids": [1, 2], "source": 3}], 4)
    with pytest.raises(ValueError, match="seq_length must be an integer >= 1"):
        pack_dataset([[1]], 0)


# --- Hugging Face datasets and TRL (benchmarks/.venv-trl) -------------------------------------------

def _columns(examples: list[dict[str, list[int]]]) -> dict[str, list[list[int]]]:
    return {c: [e[c] for e in examples] for c in ("input_ids", "attention_mask", "labels")}


@pytest.mark.hf
@pytest.mark.parametrize("strategy", ["bfd", "bfd_split"])
def test_drop_in_matches_trl_on_a_dataset(strategy: str) -> None:
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    examples = make_examples(2500, seed=1)                   # > 1000: TRL packs in several map() batches
    ds = datasets.Dataset.from_dict(_columns(examples))
    ours, theirs = pack_dataset(ds, SEQ, strategy=strategy), trl.pack_dataset(ds, SEQ, strategy=strategy)
    assert type(ours) is type(theirs) and ours.column_names == theirs.column_names
    assert ours.features == theirs.features                  # list types and seq_lengths' int32 included
    assert pieces(list(ours)) == pieces(list(theirs)) == expected_pieces(examples, strategy == "bfd_split")
    assert len(ours) <= len(theirs)


@pytest.mark.hf
def test_drop_in_wrapped_and_format_match_trl() -> None:
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    ds = datasets.Dataset.from_dict(_columns(make_examples(400, seed=2))).with_format("torch")
    ours, theirs = pack_dataset(ds, SEQ, strategy="wrapped"), trl.pack_dataset(ds, SEQ, strategy="wrapped")
    assert ours.format == theirs.format
    flat = [int(t) for r in ours for t in r["input_ids"]]
    assert flat == [int(t) for r in theirs for t in r["input_ids"]] and len(ours) <= len(theirs)
    packed = pack_dataset(ds, SEQ)
    assert packed.format["type"] == "torch" and packed[0]["seq_lengths"].dtype.is_floating_point is False


@pytest.mark.hf
def test_drop_in_streams_an_iterable_dataset() -> None:
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    examples = make_examples(2500, seed=3)
    stream = datasets.Dataset.from_dict(_columns(examples)).to_iterable_dataset(num_shards=3)
    ours, theirs = pack_dataset(stream, SEQ, buffer_size=256), trl.pack_dataset(stream, SEQ)
    assert isinstance(ours, datasets.IterableDataset)
    ours_rows, their_rows = list(ours), list(theirs)
    assert set(ours_rows[0]) == set(their_rows[0])
    assert pieces(ours_rows) == pieces(their_rows) == expected_pieces(examples, split=False)
    assert len(ours_rows) <= len(their_rows)
    assert [r["input_ids"] for r in ours] == [r["input_ids"] for r in ours_rows]   # deterministic
