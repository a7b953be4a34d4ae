"""ScriptTarget: the probe command line and reading a probe's session, exit status and output.

End-to-end probes of a script need ``throughput profile`` (zero-code capture); see test_advise_script.py.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import make_session
from throughput.advisor.script import ScriptTarget, parse_probe
from throughput.session.io import save_session
from throughput.session.records import RunEnd, RunInfo, StepRecord
from throughput.session.session import Session

EXITED_OK = 0                      # wait status of a normal exit(0)
KILLED = signal.SIGKILL            # wait status of a process killed by SIGKILL (no core dump)


def test_command_applies_only_the_overrides_a_script_can_take(tmp_path: Path) -> None:
    target = ScriptTarget("train.py", ["--epochs", "1"], warmup_steps=1)
    cmd = target.command({"micro_batch_size": 32, "grad_accum": 4, "amp": "bf16", "pin_memory": True,
                          "num_workers": 2}, steps=3, out_dir=tmp_path / "o")
    # 2 workers prefetch 2 x 2 batches while the model is built: warm-up 2 x 2 + 1 = 5 steps, then the 3 measured
    assert cmd == [sys.executable, "-m", "throughput", "profile", "--quiet", "--no-plots", "--max-steps", "8",
                   "--warmup-steps", "5", "--out", str(tmp_path / "o"), "--set", "amp=bf16", "--set",
                   "micro_batch_size=32", "--set", "num_workers=2", "--set", "pin_memory=true", "train.py", "--epochs",
                   "1"]
    # the knobs' own names and values (grad_accum is not a script knob); worker options left out without workers
    cmd = target.command({"amp": "fp32", "num_workers": 0, "prefetch_factor": 4}, steps=1, out_dir=tmp_path)
    assert "num_workers=0" in cmd and not any("prefetch" in c for c in cmd)
    assert cmd[cmd.index("--max-steps") + 1] == "2"                  # no workers: warm-up 1 + 1 measured
    # the script's own precision runs as it is; another one is set (fp32: its autocast off in the forward)
    assert "amp=fp32" not in cmd
    own_bf16 = ScriptTarget("train.py", own_amp="bf16")
    assert "amp=bf16" not in own_bf16.command({"amp": "bf16"}, steps=1, out_dir=tmp_path)
    assert "amp=fp32" in own_bf16.command({"amp": "fp32"}, steps=1, out_dir=tmp_path)
    assert own_bf16.with_env({"X": "1"}).own_amp == "bf16"


def test_parse_reads_rates_losses_and_data_wait(tmp_path: Path) -> None:
    steps = tuple(StepRecord(index=i, start_s=i * 0.5, end_s=(i + 1) * 0.5, phase_s={"data": 0.1, "forward": 0.4},
                             samples=16, loss=2.0 - 0.1 * i) for i in range(4))
    save_session(Session(info=RunInfo(run_id="p", warmup_steps=1), steps=steps), tmp_path / "session.json")
    r, session = parse_probe(tmp_path / "session.json", "", EXITED_OK, False, 60)
    # 3 measured steps (1 warm-up) of 16 samples in 0.5 s each: 48 / 1.5 = 32 samples/s; data 0.1 / 0.5 = 20%
    assert r.ok and r.samples_per_s == 32.0 and r.steps == 3
    assert abs((r.data_wait_share or 0) - 0.2) < 1e-12
    assert r.losses == (2.0, 1.9, 1.8, 1.7) and session is not None


def test_parse_recognises_an_out_of_memory_exception(tmp_path: Path) -> None:
    info = RunInfo(run_id="p", end=RunEnd.EXCEPTION,
                   end_detail="RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB")
    save_session(Session(info=info), tmp_path / "session.json")
    r, _ = parse_probe(tmp_path / "session.json", "", 1 << 8, False, 60)
    assert r.oom and not r.ok and "allocate" in (r.error or "")


def test_parse_a_run_without_steps(tmp_path: Path) -> None:
    save_session(make_session(n_steps=0), tmp_path / "session.json")
    r, _ = parse_probe(tmp_path / "session.json", "", EXITED_OK, False, 60)
    assert not r.ok and not r.oom and "no training steps" in (r.error or "")


def test_parse_a_killed_probe_without_a_session_is_oom(tmp_path: Path) -> None:
    r, session = parse_probe(tmp_path / "missing.json", "loading...\nKilled\n", KILLED, False, 60)
    assert r.oom and session is None and (r.error or "").startswith("out of memory")


def test_parse_timeout(tmp_path: Path) -> None:
    r, _ = parse_probe(tmp_path / "missing.json", "", KILLED, True, 7)
    assert r.error == "probe timed out after 7 s" and not r.oom


def test_probe_subprocess_is_bounded_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real subprocess that never finishes is killed at the timeout, with its temp folder removed."""
    sleeper = tmp_path / "fake_python.sh"
    sleeper.write_text("#!/bin/sh\nsleep 30\n")
    sleeper.chmod(0o755)
    own_tmp = tmp_path / "tmp"   # not the shared /tmp: other runs create probe folders there meanwhile
    own_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(own_tmp))
    r = ScriptTarget("train.py", python=str(sleeper), timeout_s=0.5).run({}, steps=1)
    assert (r.error or "").startswith("probe timed out")
    assert r.wall_s < 30          # killed, not waited for: the fake python sleeps 30 s
    assert list(own_tmp.glob("throughput-probe-*")) == []


def test_address_space_cap_turns_a_big_allocation_into_a_reported_oom(tmp_path: Path) -> None:
    """RLIMIT_AS in the child: a 4 GiB allocation under a 1 GiB cap fails there, not in the advisor."""
    fake = tmp_path / "fake_python.sh"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'bytearray(4 << 30)'\n")
    fake.chmod(0o755)
    r = ScriptTarget("train.py", python=str(fake), address_space_cap_bytes=1 << 30, timeout_s=30).run({}, steps=1)
    assert r.oom and "MemoryError" in (r.error or "")
