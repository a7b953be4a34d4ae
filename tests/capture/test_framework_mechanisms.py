"""Capture behaviour under mechanisms the frameworks of the compat matrix (`make compat`) use,
reproduced with plain torch so that the suite needs no framework."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from throughput.capture.runner import Target
from throughput.capture.zerocode import ProfileOptions, profile_target

# Gradient accumulation as transformers.Trainer and Accelerate do it (and the usual torch recipe):
# each micro-batch's loss is divided by the number of micro-batches before its backward, so the
# update's loss is the sum of the tensors backward() was called on (the mean over the micro-batches,
# which is what Trainer logs per update).
ACCUMULATION = """\
import json, sys, torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
per_update = []
for update in range(3):
    total = 0.0
    for micro in range(2):
        loss = model(torch.randn(8, 4)).pow(2).mean() / 2
        loss.backward()
        total += loss.item()
    opt.step()
    opt.zero_grad()
    per_update.append(total)
with open(sys.argv[1], "w") as f:
    json.dump(per_update, f)
"""


def test_accumulated_step_loss_is_the_sum_of_its_backward_losses(tmp_path: Path) -> None:
    script, expected = tmp_path / "accumulate.py", tmp_path / "losses.json"
    script.write_text(ACCUMULATION)
    session, result = profile_target(Target(path=str(script), args=(str(expected),)), ProfileOptions(warmup_steps=0))
    assert result.exit_code == 0
    assert [s.micro_steps for s in session.steps] == [2, 2, 2]
    assert [s.loss for s in session.steps] == pytest.approx(json.loads(expected.read_text()), rel=1e-6)


# Lightning's automatic optimization with accumulate_grad_batches=2: the first micro-batch's forward and
# backward run as a plain call of the closure, the last one's inside optimizer.step(closure).
CLOSURE_ACCUMULATION = """\
import torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
loader = torch.utils.data.DataLoader(torch.randn(24, 4), batch_size=4)
for i, x in enumerate(loader):
    def closure():
        loss = model(x).pow(2).mean() / 2
        loss.backward()
        return loss
    if i % 2 == 1:
        opt.step(closure)
        opt.zero_grad()
    else:
        closure()
"""


def test_closure_accumulation_counts_every_micro_batch(tmp_path: Path) -> None:
    script = tmp_path / "closure_accumulate.py"
    script.write_text(CLOSURE_ACCUMULATION)
    session, result = profile_target(Target(path=str(script)), ProfileOptions(warmup_steps=0))
    assert result.exit_code == 0
    assert [s.samples for s in session.steps] == [8, 8, 8]     # 6 batches of 4, 2 per update
    assert [s.micro_steps for s in session.steps] == [2, 2, 2]


# torch.amp.GradScaler enabled on the CPU, started at a scale so large that the first scaled loss (a sum
# above 4 x 2**126) is inf in float32: scaler.step skips that update and backs the scale off by 2**-40,
# after which nothing overflows. 6 iterations of 8 samples: 5 updates.
GRAD_SCALER = """\
import json, sys, torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
scaler = torch.amp.GradScaler("cpu", init_scale=2.0**126, backoff_factor=2.0**-40)
loader = torch.utils.data.DataLoader(torch.randn(48, 4), batch_size=8)
losses, updates = [], []
for x in loader:
    opt.zero_grad()
    loss = model(x).pow(2).sum() + 10.0
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    losses.append(loss.item())
with open(sys.argv[1], "w") as f:
    json.dump(losses, f)
"""


def test_grad_scaler_steps_are_updates_and_their_loss_is_unscaled(tmp_path: Path) -> None:
    script, written = tmp_path / "scaler.py", tmp_path / "losses.json"
    script.write_text(GRAD_SCALER)
    session, result = profile_target(Target(path=str(script), args=(str(written),)), ProfileOptions(warmup_steps=0))
    assert result.exit_code == 0
    losses = json.loads(written.read_text())
    assert len(losses) == 6
    # the first iteration's update was skipped: 5 steps, each one micro-step, whose loss is the one the
    # script computed (not 2**126 times it, nor the skipped iteration's added in); the skipped iteration's
    # 8 samples are in the first step with its time (48 samples in all, as the script read)
    assert len(session.steps) == 5
    assert [s.micro_steps for s in session.steps] == [1] * 5
    assert [s.samples for s in session.steps] == [16, 8, 8, 8, 8]
    assert [s.loss for s in session.steps] == pytest.approx(losses[1:], rel=1e-6)
    ctx = next(e.detail for e in session.events if e.kind == "context" and e.message == "grad scaler")
    assert ctx == {"grad_scaler": True, "grad_scaler_skipped": 1}
    assert any("GradScaler skipped 1 update(s)" in n for n in session.info.notes)
