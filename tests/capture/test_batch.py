"""Reading samples, tokens and padding from batches: the full walk and the remembering describer agree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from throughput.capture.batch import BatchDescriber, BatchStats, describe_batch
from throughput.capture.steps import keep_loss


def _lm_batch(rows: int, cols: int, real_per_row: int) -> dict[str, torch.Tensor]:
    mask = torch.zeros(rows, cols, dtype=torch.long)
    mask[:, :real_per_row] = 1
    ids = torch.arange(rows * cols).reshape(rows, cols)
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.clone()}


def test_tuple_of_float_tensors_has_samples_but_no_tokens() -> None:
    assert describe_batch((torch.zeros(64, 8), torch.zeros(64, 1))) == BatchStats(samples=64)


def test_dict_with_mask_counts_tokens_and_padding() -> None:
    # 4 rows x 10 columns = 40 tokens; 7 real per row -> 28 real, 12 padding
    assert describe_batch(_lm_batch(4, 10, 7)) == BatchStats(samples=4, tokens=40, padding_tokens=12)


def test_pad_id_counts_padding_without_a_mask() -> None:
    ids = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])   # 8 tokens, 5 of them are pad id 0
    assert describe_batch((ids,), pad_id=0) == BatchStats(samples=2, tokens=8, padding_tokens=5)


def test_first_integer_matrix_is_the_tokens_when_nothing_is_named_input_ids() -> None:
    x = torch.zeros(3, dtype=torch.float32)                     # samples come from the first tensor: 3
    ids = torch.ones(3, 5, dtype=torch.int64)                   # 15 tokens
    assert describe_batch([x, ids]) == BatchStats(samples=3, tokens=15)


def test_nested_and_dataclass_batches() -> None:
    @dataclass
    class Batch:
        input_ids: torch.Tensor
        extra: dict[str, torch.Tensor]

    b = Batch(input_ids=torch.ones(2, 6, dtype=torch.long), extra={"w": torch.zeros(2)})
    assert describe_batch(b) == BatchStats(samples=2, tokens=12)
    assert describe_batch({"outer": {"input_ids": torch.ones(3, 4, dtype=torch.long)}}) == BatchStats(samples=3, tokens=12)


def test_describer_reads_every_batch_exactly_as_the_full_walk() -> None:
    describe = BatchDescriber()
    batches = [_lm_batch(4, 10, 7), _lm_batch(4, 10, 9), _lm_batch(4, 16, 16), _lm_batch(3, 10, 1)]
    got = [describe(b) for b in batches]
    assert got == [describe_batch(b) for b in batches]
    # by hand: padding = rows x (cols - real): 4x3, 4x1, 4x0, 3x9; the last, smaller batch has 3 samples
    assert [(s.samples, s.tokens, s.padding_tokens) for s in got] == [(4, 40, 12), (4, 40, 4), (4, 64, 0), (3, 30, 27)]


def test_describer_follows_a_change_of_structure() -> None:
    describe = BatchDescriber()
    assert describe((torch.zeros(8, 2), torch.zeros(8))) == BatchStats(samples=8)
    # same type, new length: the roles are found again (the integer matrix is now the tokens)
    assert describe((torch.zeros(8, 2), torch.zeros(8), torch.ones(8, 3, dtype=torch.long))) == BatchStats(samples=8, tokens=24)
    # a dict with other keys than the remembered ones
    assert describe({"input_ids": torch.ones(2, 5, dtype=torch.long)}) == BatchStats(samples=2, tokens=10)
    assert describe({"input_ids": torch.ones(2, 5, dtype=torch.long), "x": torch.zeros(2)}) == BatchStats(samples=2, tokens=10)
    # the remembered position no longer holds a tensor: the full walk decides
    assert describe({"input_ids": None, "x": torch.zeros(6)}) == BatchStats(samples=6)


def test_describer_always_walks_nested_batches() -> None:
    describe = BatchDescriber()
    first = {"inputs": {"input_ids": torch.ones(2, 4, dtype=torch.long)}}
    second = {"inputs": {"input_ids": torch.ones(5, 7, dtype=torch.long)}}
    assert describe(first) == BatchStats(samples=2, tokens=8)
    assert describe(second) == BatchStats(samples=5, tokens=35)


def test_tensors_are_found_down_to_the_depth_limit_and_not_below() -> None:
    t = torch.zeros(3, 2)
    at_limit: Any = t
    for _ in range(4):                      # inside 4 lists: the tensor is at depth 4 (the limit)
        at_limit = [at_limit]
    assert describe_batch(at_limit).samples == 3
    assert describe_batch([at_limit]).samples is None   # depth 5: not walked
    assert describe_batch((t, [[[[t]]]])).samples == 3  # the flat shortcut and the recursion agree


class _OpLog(TorchDispatchMode):
    """A script's dispatch mode: records every op it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_our_reads_of_the_script_s_tensors_are_not_seen_by_its_dispatch_modes() -> None:
    """Counting padding (a mask's sum) and keeping the loss (its item()) are the profiler's own reads: a
    TorchDispatchMode of the script's sees only the script's ops, as in a plain run."""
    ids, mask, loss = torch.ones(2, 3, dtype=torch.long), torch.tensor([[1, 1, 0], [1, 0, 0]]), torch.tensor(2.5)
    with _OpLog() as log:
        stats = describe_batch({"input_ids": ids, "attention_mask": mask}, count_padding=True)
        kept = keep_loss(loss)
        (loss * 2).item()   # the script's own op and read, seen
    assert (stats.tokens, stats.padding_tokens, kept) == (6, 3, 2.5)
    assert log.ops == ["aten.mul.Tensor", "aten._local_scalar_dense.default"]


def test_the_loss_given_to_step_is_read_outside_the_script_s_dispatch_modes() -> None:
    """``Profiler.step`` reads a CPU tensor's loss itself (keep_loss's usual case, inlined there): under a
    TorchDispatchMode of the script's it defers to keep_loss, so the mode still sees only the script's op."""
    import throughput
    prof = throughput.Profiler(warmup_steps=0, progress=False)
    loss = torch.tensor(2.5)
    with _OpLog() as log:
        prof.step(loss=loss)
        (loss * 2).item()
    prof.step(loss=torch.tensor(1.5))   # no mode: read inline
    assert [s.loss for s in prof.stop().steps] == [2.5, 1.5]
    assert log.ops == ["aten.mul.Tensor", "aten._local_scalar_dense.default"]
