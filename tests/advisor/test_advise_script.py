"""End to end on real scripts: ScriptTarget probes through ``throughput profile`` and ``throughput advise
script.py``. Each probe is a real subprocess (a few seconds), so these tests stay few."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.zygote import Zygote
from throughput.advisor.script import ScriptTarget

TRAIN = textwrap.dedent("""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(512, 16), torch.randint(0, 2, (512,)))
    loader = DataLoader(data, batch_size=8, shuffle=True)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(100):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
""")

NO_STEPS = "import torch\nprint('nothing to train')\n"

OOM_AT_BATCH_ONE = textwrap.dedent("""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.randn(64, 16), torch.randint(0, 2, (64,)))
    model = nn.Linear(16, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in DataLoader(data, batch_size=1):
        # activations of 2**40 floats per sample: no machine has that much memory
        big = torch.empty(x.shape[0] << 40)
        loss = nn.functional.cross_entropy(model(x), y) + big.sum() * 0
        loss.backward()
        opt.step()
""")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_script_out_of_memory_at_batch_one_is_reported(tmp_path: Path) -> None:
    script = _write(tmp_path, "oom.py", OOM_AT_BATCH_ONE)
    r = ScriptTarget(script, timeout_s=120).run({}, steps=1)
    assert r.oom and not r.ok and "allocate" in (r.error or "")


def test_advise_script_without_training_steps_is_a_clear_error(tmp_path: Path) -> None:
    script = _write(tmp_path, "empty.py", NO_STEPS)
    before = hashlib.sha256(script.read_bytes()).hexdigest()
    out = subprocess.run([sys.executable, "-m", "throughput", "advise", str(script)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "nothing to tune" in out.stderr and "optimizer.step()" in out.stderr
    assert hashlib.sha256(script.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.py"]      # no files left behind


def test_advise_script_oom_at_batch_one_is_a_clear_error(tmp_path: Path) -> None:
    script = _write(tmp_path, "oom.py", OOM_AT_BATCH_ONE)
    out = subprocess.run([sys.executable, "-m", "throughput", "advise", str(script)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "allocate" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oom.py"]


@pytest.mark.slow
def test_advise_script_end_to_end_writes_a_plan(tmp_path: Path, zygote: Zygote) -> None:
    script = _write(tmp_path, "train.py", TRAIN)
    # `advise` forked from the warm zygote (its probes are fresh interpreters, as always); its output
    # files beside tmp_path, which must hold only what advise leaves
    out = zygote.start(["advise", "--time-budget", "1", "--probe-steps", "2", "--confirm-rounds", "2",
                        "--confirm-window", "0.3", "--plan-out", str(tmp_path / "plan.json"), str(script)],
                       tmp_path.with_name(tmp_path.name + "-output") / "advise", cwd=tmp_path).result()
    assert out.returncode == 0, out.stderr
    assert "global batch 8 samples" in out.stdout      # the script's own batch, read by the baseline profile
    assert json.loads((tmp_path / "plan.json").read_text())["plan_version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "train.py"]
