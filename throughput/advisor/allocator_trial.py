"""The allocator as a measured knob for scripts: ``malloc_threshold_bytes`` (torch-free).

glibc reads ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` once, at process start, so the
knob is applied at launch: ``throughput profile --set malloc_threshold_bytes=N script.py`` starts the
script in a fresh process with both set to N (throughput/knobs.py, ``env`` knobs). The advisor measures
it like every other recommendation, alone against the unchanged run (``confirm.py``); this module
decides whether it is worth measuring at all and with which N: the script's peak RSS rounded up to a
power of two, at least 1 GiB (``throughput.analysis.faults``, which explains why it can matter and the
numbers measured on this project's machine).
"""

from __future__ import annotations

import os
import platform
from typing import Any, Mapping

from throughput.advisor.confirm import Candidate
from throughput.analysis.faults import PageFaults, faults_are_costly, malloc_threshold_bytes, page_faults

# Steady seconds a profile needs for the host sampler to bracket them: three of its 0.5 s intervals
# (telemetry.controller.DEFAULT_INTERVAL_S, which the advisor may not import; a test holds the two
# together), so at least two samples fall inside whatever the sampler's phase (``page_faults`` needs two).
FAULT_WINDOW_S = 1.5
CAVEAT = ("caveat: the process holds its memory at its peak instead of returning it between steps; "
          "Linux with glibc only")


def skip_reason(environ: Mapping[str, str], libc: str, baseline_session: Any = None) -> str | None:
    """Why the trial need not run, or None. ``baseline_session``: a profile of the script, whose
    steady-state faults show whether the allocator costs anything at all. Skipped for the profile's
    faults only when it measured them, below the thresholds: a profile that could not measure them
    (``needs_longer_profile``) says nothing about their cost, so the trial runs."""
    if libc != "glibc":
        return f"allocator probe skipped: the MALLOC_ tunables are glibc's, and this is {libc or 'not glibc'}"
    already = sorted(k for k in environ if k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))
    if already:
        return f"allocator probe skipped: {', '.join(already)} already set in the environment"
    p = _steady_faults(baseline_session)
    if p is not None and not faults_are_costly(p):
        return f"allocator probe skipped: {_faults_text(baseline_session, p)} (below the page-fault thresholds)"
    return None


def needs_longer_profile(baseline_session: Any, environ: Mapping[str, str] | None = None,
                         libc: str | None = None) -> bool:
    """Whether a profile could decide the trial but this one measured no faults: the trial could run
    (glibc, tunables not set) and the host sampler took fewer than two samples inside the measured
    steps (it samples every 0.5 s; an advisor's first profile of a few steps is shorter than that).
    Then a profile of at least ``FAULT_WINDOW_S`` of steady steps decides it (``throughput.analysis.faults``)."""
    env = os.environ if environ is None else environ
    lib = platform.libc_ver()[0] if libc is None else libc
    return skip_reason(env, lib) is None and baseline_session is not None and \
        _steady_faults(baseline_session) is None


def allocator_candidate(baseline_session: Any, peak_rss_bytes: int | None,
                        environ: Mapping[str, str] | None = None, libc: str | None = None
                        ) -> tuple[Candidate | None, str]:
    """(the candidate to measure, or None; a note saying why not). ``peak_rss_bytes``: the script's
    resident-set peak in its baseline run, which sets N. ``baseline_session``: the profile whose faults
    decide (its measured steps are named in the evidence and the note)."""
    why = skip_reason(os.environ if environ is None else environ,
                      platform.libc_ver()[0] if libc is None else libc, baseline_session)
    if why is not None:
        return None, why
    n = malloc_threshold_bytes(peak_rss_bytes)
    p = _steady_faults(baseline_session)
    if p is not None:
        seen = f"profile: {_faults_text(baseline_session, p)}"
    elif baseline_session is not None:
        seen = (f"profile: no page faults measured over its {_measured_steps(baseline_session)} steady step(s) "
                "(fewer than two host samples inside them, or telemetry off): measured by the trial alone")
    else:
        seen = "no profile measured page faults: measured by the trial alone"
    return Candidate(rule_id="probe.allocator", title="Keep freed memory in the process (glibc malloc thresholds)",
                     settings={"malloc_threshold_bytes": n}, evidence=(seen, CAVEAT)), ""


def _steady_faults(session: Any) -> PageFaults | None:
    """Page faults over a profile's measured (post-warm-up) steps; None without a profile or samples."""
    if session is None:
        return None
    return page_faults(session.telemetry, session.steps[session.info.warmup_steps:])


def _measured_steps(session: Any) -> int:
    return len(session.steps[session.info.warmup_steps:])


def _faults_text(session: Any, p: PageFaults) -> str:
    share = f"{p.system_share:.0%}" if p.system_share is not None else "unknown"
    return (f"{p.faults_per_step:,.0f} minor faults a step, kernel time {share} of CPU time "
            f"(over {_measured_steps(session)} steady steps, {p.window_s:.1f} s sampled, the script unchanged)")
