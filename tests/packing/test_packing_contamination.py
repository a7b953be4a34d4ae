"""No contamination: each document's logits are the same packed with others as alone (fp32, 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from packing_tiny_lm import TinyLM, causal_mask

from throughput.packing import pack_to_tensors

ROW_LEN = 64


def docs_for(seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 97, int(n)).tolist() for n in rng.integers(1, 40, 14)]


@pytest.mark.parametrize("seed", [0, 1])
def test_packed_logits_equal_alone(seed: int) -> None:
    torch.manual_seed(seed)
    model = TinyLM().eval()
    docs = docs_for(seed)
    batch, plan = pack_to_tensors(docs, ROW_LEN, attn_mask=True)
    assert plan.stats.docs_per_row_max >= 2                   # rows really hold several documents
    with torch.no_grad():
        packed = model(batch["input_ids"], batch["position_ids"], batch["attn_mask"])
        worst = 0.0
        for r in range(plan.num_rows):
            col = 0
            for d, start, n in zip(*plan.row(r)):
                piece = torch.tensor([docs[d][start:start + n]])
                alone = model(piece, torch.arange(int(n))[None], causal_mask(1, int(n)))
                worst = max(worst, (packed[r, col:col + n] - alone[0]).abs().max().item())
                col += int(n)
    assert worst < 1e-5


def test_without_block_mask_and_position_reset_documents_leak() -> None:
    # The control: a plain causal mask over the row lets later documents see earlier ones.
    torch.manual_seed(0)
    model = TinyLM().eval()
    docs = docs_for(0)
    batch, plan = pack_to_tensors(docs, ROW_LEN)
    b, t = batch["input_ids"].shape
    with torch.no_grad():
        leaky = model(batch["input_ids"], torch.arange(t).expand(b, t), causal_mask(b, t))
        r = int(np.argmax(np.diff(plan.row_offsets)))            # a row with several documents
        d, start, n = (x[-1] for x in plan.row(r))                # its last document
        col = int(plan.row_fill()[r] - n)
        alone = model(torch.tensor([docs[d][start:start + n]]), torch.arange(int(n))[None], causal_mask(1, int(n)))
    assert (leaky[r, col:col + n] - alone[0]).abs().max().item() > 1e-3
