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


# Accumulates ACCUM=4 micro-batches of the DataLoader's batch_size (6, not a power of two) per optimizer
# step, in its own code, and logs what each step really ran: [pid, micro-batch size, micro-batches].
ACCUM_SCRIPT = textwrap.dedent("""
    import json, os, sys, torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    ACCUM = 4
    data = TensorDataset(torch.randn(6 * 400, 16), torch.randint(0, 2, (6 * 400,)))
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    for i, (x, y) in enumerate(DataLoader(data, batch_size=6)):
        (nn.functional.cross_entropy(model(x), y) / ACCUM).backward()
        seen.append(x.shape[0])
        if (i + 1) % ACCUM == 0:
            opt.step()
            opt.zero_grad()
            with open(sys.argv[1], "a") as log:
                log.write(json.dumps([os.getpid(), seen[-1], len(seen)]) + "\\n")
            seen = []
""")


def test_script_search_space_keeps_the_scripts_accumulation_and_own_size() -> None:
    from throughput.cli.advise_probe import search_space
    # own (6, 4), global batch 6 x 4 = 24: 6 itself, then the powers of two above it that divide 24 (8), and 24
    space, _ = search_space(24, ScriptTarget.supported, workers=(0,), own=(6, 4))
    assert space.micro_batch_size == (6, 8, 24)
    assert [space.config(micro_batch_size=m)["grad_accum"] for m in space.micro_batch_size] == [4, 4, 4]


@pytest.mark.slow
def test_script_search_labels_each_probe_with_what_the_script_ran(tmp_path: Path) -> None:
    """Every probe of the search is a real run of the script; the configuration it is recorded (and cited)
    under must be the micro-batch and accumulation the script's own log shows for that run."""
    from throughput.advisor.search import search
    from throughput.advisor.space import SearchSettings
    from throughput.cli.advise_probe import search_space

    script, log = _write(tmp_path, "accum.py", ACCUM_SCRIPT), tmp_path / "steps.jsonl"
    space, _ = search_space(24, ScriptTarget.supported, workers=(0,), own=(6, 4))
    result = search(ScriptTarget(script, [str(log)], timeout_s=120), space, SearchSettings(probe_steps=2),
                    start={"micro_batch_size": 6, "num_workers": 0})
    ran: dict[int, set[tuple[int, int]]] = {}
    for pid, micro, accum in (json.loads(line) for line in log.read_text().splitlines()):
        ran.setdefault(pid, set()).add((micro, accum))
    assert len(ran) == len(result.trials)                      # one child per probe, in order
    assert [(t.config["micro_batch_size"], t.config["grad_accum"]) for t in result.trials] == \
        [next(iter(steps)) for steps in ran.values()]
    assert all(len(steps) == 1 for steps in ran.values())       # each child ran one configuration
    assert result.trials[0].config["micro_batch_size"] == 6    # the script's own size is the baseline
    for f in result.findings:
        if f.rule_id == "probe.micro_batch_size":
            assert "grad_accum=4" in f.evidence[0] and "(global batch 24)" in f.evidence[0], f.evidence


# Re-faults its 64 MiB gradient each step under glibc's default thresholds (16,384 pages a step: see
# tests/advisor/test_allocator_trial.py); each step is a few tens of ms, so a 5-step profile lasts less
# than the host sampler's 0.5 s interval.
FAULTING = textwrap.dedent("""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(1)
    model = torch.nn.Linear(2048, 8192)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    data = TensorDataset(torch.randn(8 * 50, 2048))
    for epoch in range(100):
        for (x,) in DataLoader(data, batch_size=8):
            model(x).square().mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
""")


@pytest.mark.slow
def test_advise_script_measures_the_allocator_when_the_first_profile_is_too_short(tmp_path: Path) -> None:
    """The advisor's first profile is a few steps, too short to sample page faults; the allocator trial
    must not be skipped for that (it was: 'the profile measured no page faults'). A longer profile of
    the unchanged script measures them, and the trial runs."""
    script = _write(tmp_path, "faults.py", FAULTING)
    out = subprocess.run([sys.executable, "-m", "throughput", "advise", "--format", "json", "--time-budget", "1",
                          "--confirm-rounds", "1", "--confirm-window", "0.3", str(script)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert not [n for n in report["notes"] if n.startswith("allocator probe skipped")], report["notes"]
    alloc = [r for r in report["recommendations"] if r["id"] == "probe.allocator"]
    measured = [n for n in report["notes"] if n.startswith("Keep freed memory in the process")]
    assert alloc or measured, report
    for r in alloc:   # the longer profile's numbers: 16,384 faults a step from the gradient alone
        assert any("minor faults a step" in e and "steady steps" in e for e in r["evidence"]), r["evidence"]
