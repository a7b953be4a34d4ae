"""TrainConfig parsing and validation, schedules (hand-derived values), AdamW parameter groups, data order."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from throughput.loop.config import ConfigError, TrainConfig, field_docs, parse_set_args
from throughput.loop.data import EpochBatchSampler
from throughput.loop.runtime import param_groups
from throughput.loop.schedules import Schedule


def test_with_overrides_parses_strings_by_field_type() -> None:
    cfg = TrainConfig().with_overrides(parse_set_args(["lr=3e-4", "steps=12", "pin_memory=yes", "amp=bf16",
                                                       "clip_grad_norm=0"]))
    assert (cfg.lr, cfg.steps, cfg.pin_memory, cfg.amp, cfg.clip_grad_norm) == (3e-4, 12, True, "bf16", 0.0)
    assert TrainConfig().with_overrides({"lr": 1}).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)


@pytest.mark.parametrize("overrides, message", [
    ({"steps": "1.5"}, "steps must be int, got '1.5'"),
    ({"steps": 0}, "steps must be >= 1, got 0"),
    ({"pin_memory": "maybe"}, "pin_memory must be bool, got 'maybe'"),
    ({"schedule": "linear"}, "schedule must be one of cosine | onecycle | constant, got 'linear'"),
    ({"beta2": 1.5}, "beta2 must be in [0, 1], got 1.5"),
    ({"steps": True}, "steps must be int, got bool True"),
    ({"wd": 0.1}, "unknown config key 'wd'"),
])
def test_bad_values_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig().with_overrides(overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_every_field_is_documented() -> None:
    docs = field_docs()
    assert set(docs) == set(TrainConfig().to_dict())
    assert all(len(text) > len("(default: )") + 5 for text in docs.values())


def test_cosine_warmup_then_decay_hand_derived() -> None:
    s = Schedule(kind="cosine", total_steps=11, warmup_steps=2, min_ratio=0.1)
    assert [s(0), s(1)] == [0.5, 1.0]                              # (step+1)/warmup
    assert s(2) == pytest.approx(1.0)                              # cosine start: progress 0
    # decay over 11-1-2 = 8 steps; step 6: progress 4/8 -> 0.1 + 0.9 * 0.5 * (1 + cos(pi/2)) = 0.55
    assert s(6) == pytest.approx(0.55)
    assert s(10) == pytest.approx(0.1) and s(50) == pytest.approx(0.1)


def test_onecycle_and_constant() -> None:
    one = Schedule(kind="onecycle", total_steps=10, min_ratio=0.1, pct_start=0.3)
    # rise over round(0.3 * 10) = 3 steps from 0.1: 0.1 + 0.9 * (step+1)/3
    assert [one(0), one(1), one(2)] == pytest.approx([0.4, 0.7, 1.0])
    assert one(9) == pytest.approx(0.1)  # progress (9-3)/(10-1-3) = 1
    const = Schedule(kind="constant", total_steps=10, warmup_steps=4)
    assert [const(0), const(3), const(9)] == [0.25, 1.0, 1.0]


def test_lambdalr_state_is_plain_and_restorable() -> None:
    from throughput.loop.schedules import make_lambda_lr

    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_lambda_lr(opt, Schedule(kind="cosine", total_steps=10, warmup_steps=2))
    state = sched.state_dict()  # type: ignore[attr-defined]
    assert state["lr_lambdas"][0]["kind"] == "cosine" and state["lr_lambdas"][0]["total_steps"] == 10


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.lin = nn.Linear(4, 4)        # weight decayed, bias not
        self.norm = nn.LayerNorm(4)       # neither
        self.out = nn.Linear(4, 10, bias=False)
        self.out.weight = self.emb.weight  # tied to the embedding: not decayed


def test_param_groups_no_decay_on_norms_biases_embeddings() -> None:
    net = _Net()
    decay, no_decay = param_groups(net, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [id(p) for p in decay["params"]] == [id(net.lin.weight)]
    assert {id(p) for p in no_decay["params"]} == {id(net.emb.weight), id(net.lin.bias), id(net.norm.weight),
                                                    id(net.norm.bias)}


def test_batch_sampler_resumes_mid_epoch_and_shards_ranks() -> None:
    full = list(EpochBatchSampler(10, 3, seed=1, epoch=2, start=0, shuffle=True))
    flat = [i for b in full for i in b]
    assert len(full) == 3 and len(set(flat)) == 9 and set(flat) <= set(range(10))  # 10 // 3 = 3 batches
    assert list(EpochBatchSampler(10, 3, seed=1, epoch=2, start=1, shuffle=True)) == full[1:]
    assert list(EpochBatchSampler(10, 3, seed=1, epoch=3, start=0, shuffle=True)) != full  # new epoch, new order
    ranks = [list(EpochBatchSampler(10, 2, seed=1, epoch=0, start=0, shuffle=False, rank=r, world_size=2))
             for r in (0, 1)]
    assert ranks == [[[0, 2], [4, 6]], [[1, 3], [5, 7]]]  # 10 // 2 = 5 per rank, 2 full batches each
