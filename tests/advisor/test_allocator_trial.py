"""The allocator knob: when it is a candidate, with which threshold, and a real run of an unmodified
script under ``throughput profile --set malloc_threshold_bytes=N``, where the child must get the env and
stop re-faulting."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from throughput.advisor.allocator_trial import FAULT_WINDOW_S, allocator_candidate, needs_longer_profile, skip_reason
from throughput.advisor.rules import apply_rules, rule_input
from throughput.advisor.script import ScriptTarget
from throughput.telemetry.controller import DEFAULT_INTERVAL_S
from tests.analysis.test_faults import fault_session

def test_skipped_off_glibc_when_already_set_and_when_the_profile_shows_cheap_faults() -> None:
    assert "musl" in (skip_reason({}, "musl") or "")
    assert "MALLOC_TRIM_THRESHOLD_ already set" in (skip_reason({"MALLOC_TRIM_THRESHOLD_": "1"}, "glibc") or "")
    # 500 faults a step < 1000: no need to probe; the note carries the numbers (5% = 0.05 / (0.95 + 0.05))
    cheap = skip_reason({}, "glibc", fault_session(500, 0.95, 0.05))
    assert cheap is not None and "500 minor faults a step, kernel time 5%" in cheap
    assert skip_reason({}, "glibc", fault_session(3000, 0.3, 0.1)) is None     # costly: probe
    assert skip_reason({}, "glibc", None) is None                              # no profile at all: probe


def test_a_profile_that_measured_no_faults_does_not_skip_the_trial() -> None:
    """Too short for the host sampler (it samples every 0.5 s): the faults are unknown, not zero, so the
    trial is not skipped; the advisor profiles longer first (needs_longer_profile) and, if even that
    measures nothing, the trial decides, saying so in its evidence."""
    unsampled = dataclasses.replace(fault_session(3000, 0.3, 0.1), telemetry=())   # 3 steady steps, no samples
    assert skip_reason({}, "glibc", unsampled) is None
    assert needs_longer_profile(unsampled, {}, "glibc")
    assert not needs_longer_profile(fault_session(500, 0.95, 0.05), {}, "glibc")    # measured: decides now
    assert not needs_longer_profile(unsampled, {}, "musl")                          # no trial to decide
    assert not needs_longer_profile(unsampled, {"MALLOC_MMAP_THRESHOLD_": "1"}, "glibc")
    c, note = allocator_candidate(unsampled, None, environ={}, libc="glibc")
    assert c is not None and note == ""
    assert c.evidence[0].startswith("profile: no page faults measured over its 3 steady step(s)")
    # measured: the evidence says over what; 1.5 s between the samples at t=0.5 and t=2.0
    # the longer profile's window: 3 sampler intervals hold at least 2 samples whatever their phase
    assert FAULT_WINDOW_S == 3 * DEFAULT_INTERVAL_S
    c, _ = allocator_candidate(fault_session(3000, 0.3, 0.1), None, environ={}, libc="glibc")
    assert c is not None and c.evidence[0] == ("profile: 3,000 minor faults a step, kernel time 25% of CPU time "
                                               "(over 3 steady steps, 1.5 s sampled, the script unchanged)")


def test_candidate_carries_the_threshold_from_the_peak_rss() -> None:
    # peak RSS 3 GiB -> rounded up to a power of two: 4 GiB; under 1 GiB -> the 1 GiB floor
    c, note = allocator_candidate(fault_session(3000, 0.3, 0.1), 3 << 30, environ={}, libc="glibc")
    assert c is not None and note == "" and c.settings == {"malloc_threshold_bytes": 4 << 30}
    assert any("holds its memory at its peak" in e for e in c.evidence)
    c, _ = allocator_candidate(None, 100 << 20, environ={}, libc="glibc")
    assert c is not None and c.settings == {"malloc_threshold_bytes": 1 << 30}
    c, note = allocator_candidate(None, None, environ={}, libc="musl")
    assert c is None and "musl" in note


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


@pytest.mark.slow
def test_the_knob_applied_by_profile_reaches_the_script_and_stops_the_faults(tmp_path: Path) -> None:
    """``throughput profile --set malloc_threshold_bytes=N`` starts the script with glibc's tunables set
    (they are read once, at start): the child sees them and stops re-faulting its gradient each step."""
    script, log = tmp_path / "train.py", tmp_path / "steps.jsonl"
    script.write_text(SCRIPT)
    target = ScriptTarget(script, [str(log)], timeout_s=60)
    plain = target.run({}, 6)
    tuned = target.run({"malloc_threshold_bytes": 1 << 30}, 6)
    assert plain.ok and tuned.ok, (plain.error, tuned.error)
    runs: dict[int, tuple[str | None, list[int]]] = {}
    for pid, env, faults in (json.loads(line) for line in log.read_text().splitlines()):
        runs.setdefault(pid, (env, []))[1].append(faults)
    assert [env for env, _ in runs.values()] == [None, str(1 << 30)]   # one child each, in order
    for env, faults in runs.values():
        # the median step after the first two: while the heap settles, how other threads' allocations
        # interleave (the profiler's sampler) may split the freed chunk once and cost one more re-fault
        settled = sorted(faults[2:])
        steady = settled[len(settled) // 2]
        if env is None:
            assert steady > 16_384 / 2, faults             # the gradient's pages fault again each step
        else:
            assert steady < 1000, faults                   # kept in the heap: (almost) no faults
