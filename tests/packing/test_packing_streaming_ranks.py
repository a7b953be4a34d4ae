"""Exactly once across ranks and workers: real torchrun (2 ranks, gloo) x 2 real DataLoader workers."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from stream_ranks import DOCS, ROW_LEN, make_docs
from torchrun_ranks import run_two_ranks


def test_each_document_exactly_once_per_epoch_over_2_ranks_x_2_workers(tmp_path: Path) -> None:
    out = str(tmp_path / "rank{rank}.json")
    run_two_ranks(Path(__file__).with_name("stream_ranks.py"), out, cwd=tmp_path)
    per_rank = [json.loads(Path(out.format(rank=r)).read_text()) for r in range(2)]
    docs = make_docs()
    for epoch in range(2):
        covered: dict[int, list[tuple[int, int]]] = defaultdict(list)
        ranks_of: dict[int, set[int]] = defaultdict(set)
        for rank, epochs in enumerate(per_rank):
            for index, first_token, n in epochs[epoch]:
                start = first_token - index * 1000               # token k of document d is d * 1000 + k
                covered[index].append((start, n))
                ranks_of[index].add(rank)
        assert sorted(covered) == list(range(DOCS)), f"epoch {epoch}: documents missing or extra"
        for index, parts in covered.items():
            # The pieces of a document tile it exactly once: chunks of ROW_LEN from 0, on one rank.
            parts.sort()
            assert [s for s, _ in parts] == list(range(0, len(docs[index]), ROW_LEN)), (epoch, index, parts)
            assert sum(n for _, n in parts) == len(docs[index])
            assert len(ranks_of[index]) == 1
    assert per_rank[0][0] != per_rank[0][1], "set_epoch should reshuffle the rows"
