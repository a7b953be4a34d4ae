"""The loss a step reports under gradient accumulation: the sum of the losses passed to backward within
the step (the quantity the optimizer step used), checked against a real script that prints it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from throughput.session.io import load_session

SCRIPT = Path(__file__).resolve().parents[1] / "data" / "zerocode" / "ga_prints_loss.py"


def test_step_loss_is_the_sum_of_the_micro_batch_losses_the_script_printed(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "throughput", "profile", "--quiet", "--no-plots", "--no-telemetry", "--out",
                          str(tmp_path), str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    printed = [float(line.split()[-1]) for line in out.stdout.splitlines() if line.startswith("update ")]
    session = load_session(tmp_path / "session.json")
    assert [s.micro_steps for s in session.steps] == [4] * 8
    # the script adds loss.item() of its 4 micro-batches in order; the profiler adds the same floats in
    # the same order, so the numbers agree to the last digit (and are not the first micro-batch's 1/4)
    assert [s.loss for s in session.steps] == printed
    assert all(s.loss is not None and s.loss > 0.5 for s in session.steps)   # ~ln(3), not ~ln(3) / 4
