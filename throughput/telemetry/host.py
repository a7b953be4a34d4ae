"""Host telemetry from /proc (Linux; no psutil): CPU% and RSS of this process and of each child
process, which is where DataLoader workers live. Sources are ``main`` and ``worker:<pid>``.

The main process also gets cumulative counters (``session.records.COUNTER_METRICS``), read from the same
/proc/<pid>/stat line as its CPU ticks, so they cost no extra system call: ``minor_faults_total``
(page faults served without I/O since the process started, e.g. first touches of memory the
allocator just got back from the kernel), ``user_cpu_total_s`` and ``system_cpu_total_s`` (CPU time
in user mode and in the kernel, all threads). Analysis differences them over the steady-state window
(``throughput.analysis.faults``).
"""

from __future__ import annotations

import os
from pathlib import Path

from throughput.session.records import TelemetrySample

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

def read_stat(pid: int) -> tuple[int, int, int] | None:
    """(minor faults, user ticks, system ticks) of ``pid`` from /proc/<pid>/stat; None if it is gone.
    Ticks are clock ticks (``SC_CLK_TCK`` per second) summed over the process's threads."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after its last ')'
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[7]), int(fields[11]), int(fields[12])   # fields 10, 14, 15 of proc(5)


def read_cpu_ticks(pid: int) -> int | None:
    """utime + stime of ``pid`` in clock ticks from /proc/<pid>/stat; None if it is gone."""
    stat = read_stat(pid)
    return None if stat is None else stat[1] + stat[2]


def read_rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` from /proc/<pid>/statm; None if it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads), from /proc/<pid>/task/*/children, falling back to
    a scan of /proc for parent ids where that file does not exist."""
    found: set[int] = set()
    tasks = Path(f"/proc/{pid}/task")
    try:
        for task in tasks.iterdir():
            found.update(int(x) for x in (task / "children").read_text().split())
        return sorted(found)
    except FileNotFoundError:
        pass
    except OSError:
        return []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            if int(text[text.rfind(")") + 2:].split()[1]) == pid:
                found.add(int(entry.name))
    return sorted(found)


class HostSampler:
    """CPU% (of one core: 100 = one core busy) and RSS of ``pid`` and its children.

    CPU% is the change in CPU ticks over the change in clock time since the previous sample, so a
    process's first sample carries RSS only. ``exclude_pids`` are children that are ours (py-spy).
    Every sample of the main process also carries the ``COUNTER_METRICS``.
    """

    name = "host"

    def __init__(self, pid: int | None = None, exclude_pids: set[int] | None = None) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self.exclude_pids = set(exclude_pids or ())
        self.available = Path(f"/proc/{self.pid}/stat").exists()
        self.note = "" if self.available else "host telemetry not available: no /proc on this system"
        self._last: dict[int, tuple[float, int]] = {}

    def sample(self, now_s: float) -> list[TelemetrySample]:
        out: list[TelemetrySample] = []
        pids = [(self.pid, "main")] + [(c, f"worker:{c}") for c in child_pids(self.pid)
                                       if c not in self.exclude_pids]
        seen = set()
        for pid, source in pids:
            stat, rss = read_stat(pid), read_rss_bytes(pid)
            if stat is None or rss is None:
                continue
            seen.add(pid)
            ticks = stat[1] + stat[2]
            out.append(TelemetrySample(time_s=now_s, source=source, metric="rss_bytes", value=float(rss)))
            if pid == self.pid:
                out += _counters(now_s, source, stat)
            last = self._last.get(pid)
            if last is not None and now_s > last[0]:
                cpu_pct = 100.0 * (ticks - last[1]) / _CLK_TCK / (now_s - last[0])
                out.append(TelemetrySample(time_s=now_s, source=source, metric="cpu_pct", value=cpu_pct))
            self._last[pid] = (now_s, ticks)
        self._last = {p: v for p, v in self._last.items() if p in seen}
        return out

    def close(self) -> None:
        self._last.clear()


def _counters(now_s: float, source: str, stat: tuple[int, int, int]) -> list[TelemetrySample]:
    faults, user, system = stat
    return [TelemetrySample(time_s=now_s, source=source, metric="minor_faults_total", value=float(faults)),
            TelemetrySample(time_s=now_s, source=source, metric="user_cpu_total_s", value=user / _CLK_TCK),
            TelemetrySample(time_s=now_s, source=source, metric="system_cpu_total_s", value=system / _CLK_TCK)]
