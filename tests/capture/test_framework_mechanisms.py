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


@pytest.mark.xfail(strict=True, reason=(
    "the step's loss is the first backward's tensor only: under gradient accumulation it is one "
    "micro-batch's loss divided by the accumulation steps (with transformers.Trainer, "
    "gradient_accumulation_steps=2, the profile's loss curve is half the loss Trainer logs)"))
def test_accumulated_step_loss_is_the_sum_of_its_backward_losses(tmp_path: Path) -> None:
    script, expected = tmp_path / "accumulate.py", tmp_path / "losses.json"
    script.write_text(ACCUMULATION)
    session, result = profile_target(Target(path=str(script), args=(str(expected),)), ProfileOptions(warmup_steps=0))
    assert result.exit_code == 0
    assert [s.micro_steps for s in session.steps] == [2, 2, 2]
    assert [s.loss for s in session.steps] == pytest.approx(json.loads(expected.read_text()), rel=1e-6)
