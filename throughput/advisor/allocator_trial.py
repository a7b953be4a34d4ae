"""The allocator as a measured knob for scripts: an A/B of the script with glibc's default malloc and
with malloc told to keep freed memory (torch-free; the runs are child processes).

glibc reads ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` once, at process start, so the
only honest test is a fresh child run with them set (``ScriptTarget.with_env``). Why it can matter,
and the numbers measured on this project's machine, are in ``throughput.analysis.faults``.

Rigor is the search's (``SearchSettings``): the two sides run interleaved (default, then tuned); a
ratio within ``confirm_band`` of 1 is measured once more on both sides and the means compared; the
change is recommended only when the tuned side is faster by more than ``min_gain``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from throughput.advisor.findings import Finding, Setting
from throughput.advisor.space import SearchSettings
from throughput.advisor.trials import ProbeResult, Trial
from throughput.analysis.faults import PageFaults, allocator_env, faults_are_costly, page_faults


class EnvTarget(Protocol):
    """A probe target that can run in a fresh process with extra environment (``ScriptTarget``)."""

    last_maxrss_bytes: int | None

    def run(self, config: Mapping[str, object], steps: int) -> ProbeResult: ...
    def with_env(self, env: Mapping[str, str]) -> "EnvTarget": ...


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocatorTrial:
    """What the trial concluded: a finding (recommend) or a note (skipped, failed, no gain).
    ``measured``: both sides ran, so the result replaces the profile-based ``host.page_faults`` rule."""

    finding: Finding | None
    note: str
    trials: tuple[Trial, ...] = ()
    measured: bool = False


def skip_reason(environ: Mapping[str, str], libc: str, baseline_session: Any = None) -> str | None:
    """Why the trial need not run, or None. ``baseline_session``: a profile of the script, whose
    steady-state faults (when measured) show whether the allocator costs anything at all."""
    if libc != "glibc":
        return f"allocator probe skipped: the MALLOC_ tunables are glibc's, and this is {libc or 'not glibc'}"
    already = sorted(k for k in environ if k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))
    if already:
        return f"allocator probe skipped: {', '.join(already)} already set in the environment"
    p = _steady_faults(baseline_session)
    if p is not None and not faults_are_costly(p):
        return f"allocator probe skipped: {_faults_text(p)} (below the page-fault thresholds)"
    return None


def allocator_trial(target: EnvTarget, config: Mapping[str, Setting], settings: SearchSettings,
                    baseline_session: Any = None, environ: Mapping[str, str] | None = None,
                    libc: str | None = None) -> AllocatorTrial:
    """Run ``config`` with the default allocator and with ``allocator_env``; recommend the env when the
    measured samples/s gain exceeds ``settings.min_gain``. See the module docstring."""
    why = skip_reason(os.environ if environ is None else environ,
                      platform.libc_ver()[0] if libc is None else libc, baseline_session)
    if why is not None:
        return AllocatorTrial(finding=None, note=why)
    trials: list[Trial] = []
    default = _side(target, config, settings, trials, "allocator: default")
    env = allocator_env(target.last_maxrss_bytes)
    tuned_target = target.with_env(env)
    tuned = _side(tuned_target, config, settings, trials, "allocator: keep freed memory")
    if not default or not tuned:
        return AllocatorTrial(finding=None, note="allocator probe failed: " + _errors(trials), trials=tuple(trials))
    if needs_confirm(default, tuned, settings):
        default += _side(target, config, settings, trials, "confirm")
        tuned += _side(tuned_target, config, settings, trials, "confirm")
    finding = allocator_finding(default, tuned, env, settings, _fault_evidence(baseline_session))
    note = "" if finding else f"allocator probe: no gain ({_measured_text(default, tuned, env)})"
    return AllocatorTrial(finding=finding, note=note, trials=tuple(trials), measured=True)


def needs_confirm(default_sps: list[float], tuned_sps: list[float], settings: SearchSettings) -> bool:
    """One run a side and a ratio within ``confirm_band`` of 1: measure both sides once more."""
    ratio = _mean(tuned_sps) / _mean(default_sps)
    return len(default_sps) == len(tuned_sps) == 1 and abs(ratio - 1.0) < settings.confirm_band


def allocator_finding(default_sps: list[float], tuned_sps: list[float], env: Mapping[str, str],
                      settings: SearchSettings, fault_evidence: tuple[str, ...] = ()) -> Finding | None:
    """Recommend ``env`` when mean tuned samples/s beats the mean default by more than ``min_gain``."""
    gain = _mean(tuned_sps) / _mean(default_sps) - 1.0
    if gain <= settings.min_gain:
        return None
    return Finding(rule_id="probe.allocator", title="Keep freed memory in the process (glibc malloc; measured)",
                   evidence=(_measured_text(default_sps, tuned_sps, env), *fault_evidence,
                             "caveat: the process holds its memory at its peak instead of returning it "
                             "between steps; Linux with glibc only"),
                   expected_gain=gain, confidence="high", change=f"{_env_text(env)} python <script>")


def _env_text(env: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items())


def _measured_text(default_sps: list[float], tuned_sps: list[float], env: Mapping[str, str]) -> str:
    return (f"default malloc: {_mean(default_sps):.4g} samples/s; {_env_text(env)}: {_mean(tuned_sps):.4g} samples/s "
            f"(mean of {len(default_sps)} and {len(tuned_sps)} interleaved runs, measured)")


def _side(target: EnvTarget, config: Mapping[str, Setting], settings: SearchSettings, trials: list[Trial],
          purpose: str) -> list[float]:
    r = target.run(config, settings.probe_steps)
    trials.append(Trial(config=dict(config), result=r, purpose=purpose))
    return [r.samples_per_s] if r.ok and r.samples_per_s else []


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _errors(trials: list[Trial]) -> str:
    return "; ".join(t.result.error or "no samples/s" for t in trials if not t.result.ok) or "no samples/s measured"


def _steady_faults(session: Any) -> PageFaults | None:
    """Page faults over a profile's measured (post-warm-up) steps; None without a profile or samples."""
    if session is None:
        return None
    return page_faults(session.telemetry, session.steps[session.info.warmup_steps:])


def _faults_text(p: PageFaults) -> str:
    share = f"{p.system_share:.0%}" if p.system_share is not None else "unknown"
    return f"{p.faults_per_step:,.0f} minor faults a step, kernel time {share} of CPU time"


def _fault_evidence(session: Any) -> tuple[str, ...]:
    p = _steady_faults(session)
    return () if p is None else (f"profile: {_faults_text(p)}",)
