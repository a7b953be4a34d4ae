"""The allocator A/B: when it runs, how it decides (hand numbers), and a real run of an unmodified
script in child processes, where the tuned side must get the env and stop re-faulting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from throughput.advisor.allocator_trial import allocator_finding, allocator_trial, needs_confirm, skip_reason
from throughput.advisor.rules import apply_rules, rule_input
from throughput.advisor.script import ScriptTarget
from throughput.advisor.space import SearchSettings
from tests.analysis.test_faults import fault_session

ENV = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


def test_skipped_off_glibc_when_already_set_and_when_the_profile_shows_cheap_faults() -> None:
    assert "musl" in (skip_reason({}, "musl") or "")
    assert "MALLOC_TRIM_THRESHOLD_ already set" in (skip_reason({"MALLOC_TRIM_THRESHOLD_": "1"}, "glibc") or "")
    # 500 faults a step < 1000: no need to probe; the note carries the numbers (5% = 0.05 / (0.95 + 0.05))
    cheap = skip_reason({}, "glibc", fault_session(500, 0.95, 0.05))
    assert cheap is not None and "500 minor faults a step, kernel time 5%" in cheap
    assert skip_reason({}, "glibc", fault_session(3000, 0.3, 0.1)) is None     # costly: probe
    assert skip_reason({}, "glibc", None) is None                              # unknown: probe


def test_decision_needs_more_than_min_gain_on_the_means() -> None:
    s = SearchSettings()                                   # min_gain 3%, confirm_band 10%
    f = allocator_finding([10.0], [16.0], ENV, s)          # 16 / 10 - 1 = 60%
    assert f is not None and f.expected_gain == pytest.approx(0.6) and f.confidence == "high"
    assert f.change.startswith("MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 ")
    assert any("holds its memory at its peak" in e for e in f.evidence)
    # means 10.0 and 10.2: 2% < 3%
    assert allocator_finding([9.0, 11.0], [10.2, 10.2], ENV, s) is None
    assert needs_confirm([10.0], [10.5], s)                # 5% is within the 10% band: run again
    assert not needs_confirm([10.0], [12.0], s)            # 20%: clear
    assert not needs_confirm([10.0, 10.0], [10.5, 10.5], s)  # already confirmed


def test_profile_rule_turns_the_analysis_finding_into_advice() -> None:
    ids = [f.rule_id for f in apply_rules(rule_input(fault_session(3000, 0.3, 0.1)))]
    assert "host.page_faults" in ids
    assert "host.page_faults" not in [f.rule_id for f in apply_rules(rule_input(fault_session(999, 0.3, 0.1)))]


# Each step the script appends (pid, malloc env, minor faults that step) to the log named in argv: the
# test reads the children's own counts. Linear(2048, 8192): its 64 MiB gradient is unmapped by
# zero_grad(set_to_none=True) and faulted in again by backward (16,384 pages) under default malloc.
SCRIPT = """
import json, os, resource, sys, torch
torch.set_num_threads(1)
model = torch.nn.Linear(2048, 8192)
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
x = torch.randn(8, 2048)
for _ in range(50):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model(x).square().mean().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    with open(sys.argv[1], "a") as log:
        log.write(json.dumps([os.getpid(), os.environ.get("MALLOC_MMAP_THRESHOLD_"),
                              resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before]) + "\\n")
"""


def test_real_script_ab_gives_the_env_to_the_tuned_child_only(tmp_path: Path) -> None:
    script, log = tmp_path / "train.py", tmp_path / "steps.jsonl"
    script.write_text(SCRIPT)
    target = ScriptTarget(script, [str(log)], timeout_s=60)
    out = allocator_trial(target, {}, SearchSettings(probe_steps=2), environ={}, libc="glibc")
    assert out.measured and all(t.result.ok for t in out.trials), out.note
    assert [t.purpose for t in out.trials][:2] == ["allocator: default", "allocator: keep freed memory"]
    runs: dict[int, tuple[str | None, list[int]]] = {}
    for pid, env, faults in (json.loads(line) for line in log.read_text().splitlines()):
        runs.setdefault(pid, (env, []))[1].append(faults)
    assert len(runs) == len(out.trials)                    # one child per probe, 2 or 4 (confirm)
    envs = [env for env, _ in runs.values()]               # dicts keep the order the children ran
    assert envs[:2] == [None, str(1 << 30)]                # peak RSS well under 1 GiB: the 1 GiB floor
    for env, faults in runs.values():
        steady = sorted(faults[1:])[len(faults[1:]) // 2]  # median step after the first
        if env is None:
            assert steady > 16_384 / 2, faults             # the gradient's pages fault again each step
        else:
            assert steady < 1000, faults                   # kept in the heap: (almost) no faults
    assert (out.finding is None) == bool(out.note)         # a finding, or a note that says why not
