"""``throughput advise RUN.json`` as a real subprocess: rules only, no code run, one-line errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import make_session
from throughput.session.io import save_session
from throughput.session.records import RunInfo
from throughput.session.session import Session


def _advise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "throughput", "advise", *args], capture_output=True, text=True,
                          timeout=60)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_advise_saved_session_prints_ranked_findings_and_writes_a_plan(tmp_path: Path) -> None:
    run = save_session(make_session(n_steps=6, data=0.3, forward=0.3, backward=0.3, optimizer=0.1, samples=8),
                       tmp_path / "run.json")
    before = _digest(run)
    out = _advise(str(run), "--plan-out", str(tmp_path / "plan.json"))
    assert out.returncode == 0, out.stderr
    assert "Raise DataLoader num_workers" in out.stdout and "evidence: waiting for batches 30%" in out.stdout
    assert "no probes run" in out.stdout
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["plan_version"] == 1 and "num_workers" in plan
    assert _digest(run) == before                          # the session file is untouched


def test_corrupt_session_is_one_line_error_and_untouched(tmp_path: Path) -> None:
    bad = tmp_path / "run.json"
    bad.write_text('{"schema": "throughput.session", "schema_version": 1, "info": {')
    before = _digest(bad)
    out = _advise(str(bad))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("throughput: error: ")
    assert "truncated" in out.stderr
    assert _digest(bad) == before and sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_session_without_steps_is_explained(tmp_path: Path) -> None:
    run = save_session(Session(info=RunInfo(run_id="empty")), tmp_path / "run.json")
    out = _advise(str(run))
    assert out.returncode == 0 and "No training steps were seen" in out.stdout


def test_unknown_device_is_advised_without_error(tmp_path: Path) -> None:
    s = make_session(n_steps=4, forward=0.5, backward=0.5)
    run = save_session(Session(info=RunInfo(run_id="x", device="npu", device_name="Ascend 910B"), steps=s.steps),
                       tmp_path / "run.json")
    out = _advise(str(run))
    assert out.returncode == 0, out.stderr
    assert "Ascend 910B" in out.stdout and "no recommendations" in out.stdout


def test_missing_file_and_bad_options_are_one_line(tmp_path: Path) -> None:
    missing = _advise(str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "no such file" in missing.stderr and missing.stderr.count("\n") == 1
    both = _advise(str(tmp_path / "nope.json"), "--target-global-batch", "8", "--target-tokens", "100")
    assert both.returncode == 2 and "not both" in both.stderr
    no_target = _advise()
    assert no_target.returncode == 2 and "nothing to advise on" in no_target.stderr
