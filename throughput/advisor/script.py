"""``ScriptTarget``: probe an unmodified script by re-running it under ``throughput profile --set ...``.

Each probe is one subprocess, the command a recommendation prints plus our own options::

    python -m throughput profile --quiet --no-plots --max-steps N --warmup-steps W --out TMP \
        --set k=v ... script.py args...

bounded in time (killed with its process group after ``timeout_s``) and, optionally, in memory
(``RLIMIT_AS`` set in the child before exec: an address-space cap, so give it room above the real
budget: torch maps far more virtual memory than it touches). The probe reads TMP/session.json and
deletes TMP afterwards, so it asks for no plots (nobody would see them); the user's files are never
written. Peak memory on CPU is the child's own resident-set high-water mark from ``wait4`` (its
``ru_maxrss``); on CUDA the session's recorded peak.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from throughput.finding import int_setting
from throughput.advisor.trials import Config, ProbeResult, one_line, text_is_oom
from throughput.capture.digests import DIGESTS_ENV
from throughput.knobs import KNOBS, show

# Config keys the zero-code overrides apply (``throughput profile --set``): the script knobs.
SCRIPT_KEYS = frozenset(k for k, knob in KNOBS.items() if knob.script)
LOADER_ONLY_WITH_WORKERS = ("prefetch_factor", "persistent_workers")


def warmup_for(config: Config, base: int) -> int:
    """Warm-up steps for a configuration: with loader workers, at least the batches they prefetched
    while the model was built (workers x prefetch_factor), which would credit them with a head start."""
    workers = int_setting(config, "num_workers", 0)
    if not workers:
        return base
    return max(base, workers * int_setting(config, "prefetch_factor", 2) + 1)


class ScriptTarget:
    """Runs ``script`` with overrides. Keys that are not script knobs (e.g. grad_accum, which a script
    cannot take from outside) are ignored: the plan still carries them. ``env`` is added to the
    child's environment. ``digests``: record sample digests of the first N training batches (the
    worker-split check, ``stream_check.py``). ``own_amp``: the precision the script's own autocast runs
    its training forward in (``fp32``: none); a probe at that precision adds no ``--set amp`` (the
    script runs as it is), any other sets it (``fp32`` turns the script's autocast off in the forward)."""

    supported = SCRIPT_KEYS

    def __init__(self, script: str | os.PathLike[str], args: Sequence[str] = (), *, timeout_s: float = 120.0,
                 address_space_cap_bytes: int | None = None, python: str = sys.executable,
                 warmup_steps: int = 1, cwd: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None, digests: int = 0, own_amp: str = "fp32") -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.script = Path(script)
        self.args = tuple(args)
        self.timeout_s = timeout_s
        self.cap = address_space_cap_bytes
        self.python = python
        self.warmup_steps = warmup_steps
        self.cwd = Path(cwd) if cwd is not None else None
        self.env = dict(env or {})
        self.digests = digests
        self.own_amp = own_amp
        self.last_session: Any = None      # the Session of the latest probe (None when none was written)
        self.last_maxrss_bytes: int | None = None   # the latest probe's resident-set high-water mark

    def with_env(self, env: Mapping[str, str]) -> "ScriptTarget":
        """The same target with ``env`` added to the child's environment."""
        return ScriptTarget(self.script, self.args, timeout_s=self.timeout_s, address_space_cap_bytes=self.cap,
                            python=self.python, warmup_steps=self.warmup_steps, cwd=self.cwd,
                            env={**self.env, **env}, digests=self.digests, own_amp=self.own_amp)

    def with_digests(self, n: int) -> "ScriptTarget":
        """The same target, recording sample digests of the first ``n`` training batches."""
        t = self.with_env({})
        t.digests = n
        return t

    def command(self, config: Config, steps: int, out_dir: Path) -> list[str]:
        """The exact command line of one probe (overrides in sorted key order)."""
        warmup = warmup_for(config, self.warmup_steps)
        cmd = [self.python, "-m", "throughput", "profile", "--quiet", "--no-plots", "--max-steps",
               str(steps + warmup), "--warmup-steps", str(warmup), "--out", str(out_dir)]
        no_workers = not config.get("num_workers")
        for key in sorted(config):
            if no_workers and key in LOADER_ONLY_WITH_WORKERS:
                continue              # loader-worker options mean nothing without workers
            value = config[key]
            if key == "amp" and value == self.own_amp:
                continue              # the script's own precision: run it as it is
            if key in SCRIPT_KEYS and isinstance(value, (bool, int, float, str)):   # None: not set
                cmd += ["--set", f"{key}={show(value)}"]
        return cmd + [str(self.script), *self.args]

    def _limit(self) -> None:   # runs in the child between fork and exec
        os.setsid()
        if self.cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (self.cap, self.cap))

    def run(self, config: Config, steps: int) -> ProbeResult:
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix="throughput-probe-"))
        try:
            return self._run(config, steps, tmp, t0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _run(self, config: Config, steps: int, tmp: Path, t0: float) -> ProbeResult:
        out = tmp / "out"
        log = tmp / "output.log"
        with open(log, "wb") as sink:
            env = {**os.environ, **self.env}
            if self.digests:
                env[DIGESTS_ENV] = str(self.digests)
            proc = subprocess.Popen(self.command(config, steps, out), stdout=sink, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=self._limit, cwd=self.cwd,
                                    env=env if self.env or self.digests else None)
            status, maxrss_kib, timed_out = self._wait(proc)
        self.last_maxrss_bytes = maxrss_kib * 1024 if maxrss_kib > 0 else None
        text = log.read_text(errors="replace")
        result, self.last_session = self.parse(out, text, status, timed_out)
        peak = result.peak_memory_bytes
        if peak is None and maxrss_kib > 0:
            peak = maxrss_kib * 1024
        return ProbeResult(samples_per_s=result.samples_per_s, tokens_per_s=result.tokens_per_s,
                           peak_memory_bytes=peak, losses=result.losses, data_wait_share=result.data_wait_share,
                           oom=result.oom, error=result.error, wall_s=time.perf_counter() - t0, steps=result.steps)

    def parse(self, out: Path, output: str, status: int, timed_out: bool) -> tuple[ProbeResult, Any]:
        """What one run measured (from ``out``, the run's folder) and its session (or None)."""
        return parse_probe(out / "session.json", output, status, timed_out, self.timeout_s)

    def _wait(self, proc: subprocess.Popen[bytes]) -> tuple[int, int, bool]:
        """(wait status, child's max RSS in KiB, timed out). Kills the whole process group on timeout."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return status, int(usage.ru_maxrss), False
            if time.monotonic() > deadline:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                return status, int(usage.ru_maxrss), True
            time.sleep(0.05)


def parse_probe(session_path: Path, output: str, status: int, timed_out: bool,
                timeout_s: float) -> tuple[ProbeResult, Any]:
    """Turn a probe's session file, output and exit status into (ProbeResult, Session or None); never raises."""
    from throughput.analysis.summary import summarize
    from throughput.session.io import SessionFormatError, load_session

    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    if timed_out:
        return ProbeResult(error=f"probe timed out after {timeout_s:.0f} s"), None
    try:
        session = load_session(session_path)
    except SessionFormatError as e:
        oom = text_is_oom(output) or killed
        why = _last_error_line(output) or f"no session written ({e})"
        return ProbeResult(oom=oom, error=("out of memory: " if oom and "memory" not in why.lower() else "") + why), None
    summary = summarize(session)
    losses = tuple(s.loss for s in session.steps if s.loss is not None)
    peaks = [s.peak_memory_bytes for s in session.steps if s.peak_memory_bytes is not None]
    data = sum(p.share for p in summary.phases if p.phase == "data") if summary.phases else None
    error = None
    if session.info.end.value == "exception":
        error = session.info.end_detail or "the script raised an exception"
    elif not session.steps:
        error = "the script ran no training steps (no optimizer.step() or backward() was seen)"
    oom = error is not None and (text_is_oom(error) or text_is_oom(output))
    return ProbeResult(samples_per_s=summary.rates.samples_per_s, tokens_per_s=summary.rates.tokens_per_s,
                       peak_memory_bytes=max(peaks) if peaks else None, losses=losses, data_wait_share=data,
                       oom=oom, error=one_line(error) if error else None, steps=summary.steps_measured), session


def _last_error_line(output: str) -> str | None:
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Killed" in line:
            return one_line(line)
    return lines[-1][:300] if lines else None
