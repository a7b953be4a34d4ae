"""``--py-spy``: sample the whole process tree (main process and DataLoader workers) with py-spy.

py-spy runs as a separate process attached with ptrace. Where ptrace is not permitted the run goes
on without it and a note says how to allow it. The raw profile stays in the report folder in
speedscope format (open it at https://www.speedscope.app as is); the top functions by own time are
recorded as ``pyspy_hot`` events so a saved session can be re-rendered without the file (busy apart
from idle waits; the main thread limited to the training loop, see ``analysis/hotspots.py``), and what
was left out as one ``pyspy_window`` event.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from throughput.analysis.hotspots import pyspy_profile

PROFILE_NAME = "pyspy.speedscope.json"
LOG_NAME = "pyspy.log"
ATTACH_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 20.0
PTRACE_HINT = ("allow ptrace: run as root, or `sudo sysctl kernel.yama.ptrace_scope=0`, or in a container "
               "add `--cap-add SYS_PTRACE`")


def find_py_spy() -> str | None:
    """The py-spy binary installed with the py-spy package (next to sys.executable), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


def ptrace_blocker(scope_file: str | Path = "/proc/sys/kernel/yama/ptrace_scope",
                   euid: int | None = None) -> str | None:
    """Why attaching to this process is likely not permitted, or None when it should be.

    Yama's scope 1 lets a process trace only its descendants, and py-spy is our child, not our
    parent, so it needs root or CAP_SYS_PTRACE (we treat root as the way in)."""
    euid = os.geteuid() if euid is None else euid
    try:
        scope = int(Path(scope_file).read_text().strip())
    except (OSError, ValueError):
        return None  # no Yama: classic ptrace rules (same user may attach)
    if scope >= 3:
        return "kernel.yama.ptrace_scope=3 forbids ptrace entirely (needs a reboot to change)"
    if scope >= 1 and euid != 0:
        return f"kernel.yama.ptrace_scope={scope} and not root: {PTRACE_HINT}"
    return None


class PySpy:
    """One ``py-spy record --subprocesses`` process for the run; ``stop()`` always reaps it."""

    def __init__(self, out_dir: str | Path, rate: int = 100) -> None:
        self.out_dir = Path(out_dir)
        self.rate = rate
        self.pid: int | None = None
        self.note = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._target_pid = 0

    @property
    def profile_path(self) -> Path:
        return self.out_dir / PROFILE_NAME

    def start(self, target_pid: int) -> bool:
        """Attach to ``target_pid`` and its children. False (with ``note``) when py-spy cannot run."""
        self._target_pid = target_pid
        binary = find_py_spy()
        if binary is None:
            self.note = "py-spy not run: the py-spy binary was not found (pip install py-spy)"
            return False
        blocker = ptrace_blocker()
        if blocker is not None:
            self.note = f"py-spy not run: {blocker}"
            return False
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.profile_path.unlink(missing_ok=True)
        cmd = [binary, "record", "--subprocesses", "--nonblocking", "--format", "speedscope",
               "--rate", str(self.rate), "--pid", str(target_pid), "-o", str(self.profile_path)]
        with open(self.out_dir / LOG_NAME, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self._proc.pid
        return self._wait_attached()

    def _log(self) -> str:
        try:
            return (self.out_dir / LOG_NAME).read_text(errors="replace")
        except OSError:
            return ""

    def _wait_attached(self) -> bool:
        # py-spy prints "Sampling process ..." once attached; it exits at once when it cannot attach.
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        while time.monotonic() < deadline:
            if "Sampling process" in self._log():
                return True
            if self._proc is not None and self._proc.poll() is not None:
                self.note = f"py-spy could not attach: {_last_line(self._log())}{_hint_for(self._log())}"
                self._proc = None
                return False
            time.sleep(0.02)
        return True  # slow to start: keep it running, stop() will tell whether it wrote a profile

    def stop(self) -> None:
        """SIGINT (py-spy writes its profile), wait, then kill; always reaps the process."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not self.profile_path.exists():
            self.note = f"py-spy wrote no profile: {_last_line(self._log())}{_hint_for(self._log())}"

    def report_to(self, prof: Any) -> None:
        """Add the raw profile as an artifact, its hot functions as events, and any note."""
        if self.note:
            prof.add_note(self.note)
        if not self.profile_path.exists():
            return
        try:
            data = json.loads(self.profile_path.read_text())
        except (OSError, ValueError) as e:
            prof.add_note(f"py-spy profile unreadable: {e}")
            return
        prof.add_artifact(str(self.profile_path))
        summary = pyspy_profile(data, self._target_pid)
        for hot in summary.hot:
            prof.event("pyspy_hot", f"{hot.role}: {hot.function} ({hot.file}:{hot.line})",
                       role=hot.role, function=hot.function, file=hot.file, line=hot.line,
                       own_s=hot.own_s, share=hot.share, processes=hot.processes, idle=hot.idle)
        prof.event("pyspy_window", "py-spy samples outside the training loop", loop_found=summary.loop_found,
                   before_s=summary.before_s, after_s=summary.after_s, profile=str(self.profile_path))


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def _hint_for(log: str) -> str:
    lowered = log.lower()
    if "permission" in lowered or "ptrace" in lowered or "operation not permitted" in lowered:
        return f" ({PTRACE_HINT})"
    return ""
