"""The public names of ``throughput`` work in a fresh interpreter, in any order of first use (they load
lazily: a function of the package that used a lazy name as a global raised NameError unless something
had touched that attribute first)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import throughput
from throughput.capture.profiler import Profiler
from throughput.timing.clock import FakeClock
clock = FakeClock()
prof = Profiler(clock=clock, warmup_steps=0)
for _ in range(3):
    with prof.phase("forward"):
        clock.advance(0.01)
    prof.step()
prof.stop()
print(throughput.summarize(prof).step_time.count, throughput.summarize(prof.session()).step_time.count)
"""


def test_summarize_before_any_other_public_name_is_touched() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "3"]
