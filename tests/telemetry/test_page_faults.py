"""The host sampler sees a real training loop fault its gradients in again every step, and the
recommended glibc environment stops it. Each run is its own process: malloc reads the env at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from throughput.analysis.faults import allocator_env

# Linear(2048, 8192): an 8192 x 2048 fp32 weight gradient is 64 MiB, above glibc's largest dynamic
# mmap threshold (32 MiB), so zero_grad(set_to_none=True) unmaps it and backward maps it again:
# 64 MiB / 4 KiB = 16,384 fresh pages a step.
CHILD = """
import json, torch
from throughput.analysis.faults import page_faults
from throughput.analysis.summary import summarize
from throughput.capture.profiler import Profiler
from throughput.telemetry import TelemetryController

torch.set_num_threads(1)
model = torch.nn.Linear(2048, 8192)
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
x = torch.randn(8, 2048)
prof = Profiler(device="cpu", warmup_steps=2, telemetry=TelemetryController(interval_s=0.05, nvml=False))
with prof:
    for _ in range(14):
        with prof.phase("forward"):
            loss = model(x).square().mean()
        with prof.phase("backward"):
            loss.backward()
        with prof.phase("optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)
        prof.step()
session = prof.session()
p = page_faults(session.telemetry, session.steps[2:])
print(json.dumps({"faults_per_step": p.faults_per_step if p else None,
                  "kinds": [f.kind for f in summarize(session).findings]}))
"""


def _run(tmp_path: Path, extra_env: dict[str, str]) -> dict[str, object]:
    script = tmp_path / "faulting.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(extra_env)
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="host counters need Linux /proc")
def test_sampler_sees_gradient_refaults_and_the_env_stops_them(tmp_path: Path) -> None:
    default = _run(tmp_path, {})
    faults = default["faults_per_step"]
    assert isinstance(faults, float)
    assert faults > 16_384 / 2, default      # most of the 16,384 gradient pages fault again each step
    assert "page_faults_per_step" in default["kinds"], default
    tuned = _run(tmp_path, allocator_env(None))   # 1 GiB thresholds: the gradient stays in the heap
    faults = tuned["faults_per_step"]
    assert isinstance(faults, float)
    assert faults < 1000, tuned
    assert "page_faults_per_step" not in tuned["kinds"], tuned
