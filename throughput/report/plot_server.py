"""A plot process started with the run, so that matplotlib is imported by the time the report is written.

The plots drawn after a run (``plot_worker.PlotProcess``) cost a new interpreter, matplotlib's import and
the drawing: 1.08 s of the 1.86 s post-run work of a 100k-step zero-code run on a 2-core AMX Xeon
(2026-12-02), about twice that on an AVX2-only EPYC. Started when the run starts, the same process has
done its imports while the script trained, and after the run only the drawing is left.

It must not be seen by the run it waits for, so:

- it is not a child of the profiled process. A short-lived launcher forks it and exits, and is reaped
  before the script starts: ``os.wait()``, ``waitpid(-1)`` and a SIGCHLD handler in the script see no
  process of ours, and nothing is left for the script to reap or to wait for. Where the profiled process
  would adopt it anyway (it is PID 1 in a container, or a child subreaper), it is stopped and reaped at
  once and the plots are drawn as before;
- it runs in a session of its own (a Ctrl-C on the terminal reaches only the script), with its stdout and
  stderr away from the script's, and imports in a thread of lowered priority, so that it takes a core
  from the script's start (its DataLoader workers) only when that core is idle;
- the profiled process holds two descriptors (one end of a socket pair, and a pidfd to signal the server
  by): close-on-exec, closed again in any child forked from it (DataLoader workers), and checked to still
  be ours before each use (a script that closed every descriptor gets the plots drawn the usual way,
  never a job written into its own file, nor its file closed by us). The job is sent with MSG_NOSIGNAL:
  a server that died cannot raise SIGPIPE in a script that restored SIGPIPE's default action;
- it exits without drawing when the profiled process ends (a pidfd where the OS has one, otherwise a check
  each second), when its socket closes, or when told that there is no job.

Where a second core is missing, matplotlib is absent, or several ranks share the node (a process per rank
for the whole run would compete with the ranks for cores), nothing is started and the plots are drawn as
before.

Protocol, over the socket pair (the server's stdin and stdout): the launcher writes the server's pid and a
newline; the parent sends an 8-byte big-endian length and a pickled ``PlotJob`` (length 0: no job); the
server writes one JSON line (``plot_job.reply_line``) and exits.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from throughput.report.plot_job import (PlotJob, PlotResult, child_env, draw, draws_elsewhere, parse_reply,
                                        remove_partial_images, reply_line)

LAUNCH_TIMEOUT_S = 10.0   # the launcher prints the server's pid within milliseconds; past this, give up
SEND_TIMEOUT_S = 30.0     # a server that takes no job for this long (stopped?) is passed over
_NO_SIGPIPE = getattr(socket, "MSG_NOSIGNAL", 0)
_HEADER_BYTES = 8
# The launcher: fork the server (exec'd in the child), print its pid, exit. ``-I -S``: it imports nothing.
_LAUNCHER = ("import os, sys\n"
             "pid = os.fork()\n"
             "if pid == 0:\n"
             "    try:\n"
             "        os.execv(sys.argv[1], sys.argv[1:])\n"
             "    finally:\n"
             "        os._exit(127)\n"
             "os.write(1, b'%d\\n' % pid)\n")


class PlotServer:
    """The parent's handle: the server's pid, a pidfd to signal it safely, and one end of a socket pair
    (a socket, not pipes: sending with MSG_NOSIGNAL, a server that has died can never raise SIGPIPE in a
    script that restored SIGPIPE's default action)."""

    def __init__(self, pid: int, sock: socket.socket, pidfd: int | None) -> None:
        self.pid = pid
        self._sock: socket.socket | None = sock
        self._pidfd = pidfd
        self._identities = (_identity(sock.fileno()), _identity(pidfd))
        self.out: Path | None = None      # where the submitted job draws (absolute)

    @classmethod
    def spawn(cls) -> "PlotServer | None":
        """Start a server for this process; None when it cannot be started here."""
        ours, theirs = socket.socketpair()   # both close-on-exec here; the server's end becomes its stdin/stdout
        argv = [sys.executable, "-I", "-S", "-c", _LAUNCHER,
                sys.executable, "-m", "throughput.report.plot_server", str(os.getpid())]
        launcher: subprocess.Popen[bytes] | None = None
        pid: int | None = None
        try:
            launcher = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=theirs.fileno(),
                                        stderr=subprocess.DEVNULL, env=child_env(), start_new_session=True)
            theirs.close()
            pid = _read_pid(ours)
            launcher.wait(LAUNCH_TIMEOUT_S)
            launcher = None
        except (OSError, subprocess.SubprocessError, ValueError):
            pid = None
        finally:
            theirs.close()
            if launcher is not None:   # the launcher did not finish: no server is known to us
                launcher.kill()
                launcher.wait()
        if pid is not None and _parent_of(pid) == os.getpid():
            # This process adopted it: it is init (PID 1 in a container) or a child subreaper, so the
            # server would be the script's child after all. Not used; reaped now, before the script runs.
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pid = None
        if pid is None:
            ours.close()
            return None
        return cls(pid, ours, _pidfd(pid))

    def submit(self, job: PlotJob) -> bool:
        """Send the job; False when the server is gone or its socket is no longer ours (draw another way)."""
        self.out = Path(os.path.abspath(job.out))   # the server's working directory is the run's start's
        payload = pickle.dumps(replace(job, out=self.out), protocol=pickle.HIGHEST_PROTOCOL)
        return self._send(len(payload).to_bytes(_HEADER_BYTES, "big") + payload)

    def reply(self, timeout_s: float) -> PlotResult | None:
        """The server's reply (None: it ended without a readable one). Raises TimeoutError."""
        data = _read_line(self._sock, timeout_s) if self._sock is not None and self._ours() else b""
        self._close()
        return parse_reply(0, data) if data else None

    def close(self) -> None:
        """No job for this server: tell it to exit."""
        self._send(bytes(_HEADER_BYTES))
        self._close()

    def kill(self) -> None:
        """Stop the server (a report aborted by a second Ctrl-C) and remove the image it was writing."""
        try:
            if self._pidfd is None:   # no pidfd here (an old kernel): by pid
                os.kill(self.pid, signal.SIGKILL)
            elif self._ours():        # by pidfd: never another process that took the pid over
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        except OSError:
            pass
        self._close()
        if self.out is not None:
            remove_partial_images(self.out, self.pid)

    def forget(self) -> None:
        """In a forked child: drop the parent's server, closing the copies of its descriptors."""
        self._close()

    def _send(self, data: bytes) -> bool:
        sock = self._sock
        if sock is None or not self._ours():
            self._close()
            return False
        try:
            sock.settimeout(SEND_TIMEOUT_S)
            sock.sendall(data, _NO_SIGPIPE)
        except OSError:   # EPIPE: the server has exited; or it stopped reading
            self._close()
            return False
        return True

    def _ours(self) -> bool:
        """Are the descriptors still the ones we opened? (A script may have closed them and reused the numbers.)"""
        sock = self._sock
        return sock is not None and (_identity(sock.fileno()), _identity(self._pidfd)) == self._identities

    def _close(self) -> None:
        """Close our descriptors once; ones that are no longer ours are let go without closing."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if _identity(sock.fileno()) == self._identities[0]:
            sock.close()
        else:
            sock.detach()
        if self._pidfd is not None and _identity(self._pidfd) == self._identities[1]:
            os.close(self._pidfd)
        self._pidfd = None


def _identity(fd: int | None) -> tuple[int, int] | None:
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _parent_of(pid: int) -> int | None:
    """Process ``pid``'s parent, from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _read_pid(sock: socket.socket) -> int | None:
    line = _read_line(sock, LAUNCH_TIMEOUT_S)
    return int(line) if line.strip().isdigit() else None


def _read_line(sock: socket.socket, timeout_s: float) -> bytes:
    """Bytes up to the first newline or EOF. Raises TimeoutError."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            raise TimeoutError(f"no reply within {timeout_s:.0f} s")
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# -- the process-wide slot: started by the command or ``throughput.profile``, taken by the report ------
_prestarted: PlotServer | None = None


def prestart() -> None:
    """Start a server for this run's report where one helps (see the module docstring); else nothing."""
    global _prestarted
    if _prestarted is None and not _several_local_ranks() and draws_elsewhere():
        _prestarted = PlotServer.spawn()


def take() -> PlotServer | None:
    """The server started for this process, handed over once."""
    global _prestarted
    server, _prestarted = _prestarted, None
    return server


def discard() -> None:
    """The run wrote no plots: let its server go."""
    server = take()
    if server is not None:
        server.close()


def _forget_in_child() -> None:
    global _prestarted
    if _prestarted is not None:
        _prestarted.forget()
        _prestarted = None


def _several_local_ranks() -> bool:
    for name in ("LOCAL_WORLD_SIZE", "WORLD_SIZE"):
        value = os.environ.get(name)
        if value is not None:
            return not value.strip().isdigit() or int(value) > 1
    return False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


# -- the server ---------------------------------------------------------------------------------------
def serve(parent_pid: int) -> None:
    """Import while waiting for the job; draw it, print the reply, exit. Never returns."""
    warm = threading.Thread(target=_warm_up, name="throughput-plot-warm-up", daemon=True)
    warm.start()
    code = 0
    try:
        payload = _wait_for_job(0, parent_pid)
        if payload:
            warm.join()
            os.write(1, reply_line(draw(pickle.loads(payload))))
    except BaseException:   # no reply: the parent draws the plots itself
        code = 1
    os._exit(code)   # nothing to flush or finalize: skips matplotlib's teardown (~0.1 s)


def _warm_up() -> None:
    try:
        if sys.platform == "linux":   # Linux: a thread's own priority (this thread only)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        from throughput.report.plots import warm_up
        warm_up()
    except Exception:   # drawing will meet the same problem and say it
        pass


def _wait_for_job(fd: int, parent_pid: int) -> bytes | None:
    """The job's bytes; None for no job, a closed socket, or a parent that has exited."""
    watch = _pidfd(parent_pid)
    header = _read_exact(fd, _HEADER_BYTES, parent_pid, watch)
    size = int.from_bytes(header, "big") if header else 0
    return _read_exact(fd, size, parent_pid, watch) if size else None


def _read_exact(fd: int, size: int, parent_pid: int, watch: int | None) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        ready = select.select([fd] if watch is None else [fd, watch], [], [], 1.0 if watch is None else None)[0]
        if watch is not None and watch in ready:
            return None   # the parent exited
        if fd not in ready:
            if not _alive(parent_pid):
                return None
            continue
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)   # Linux >= 5.3: readable once the process has exited
    except (AttributeError, OSError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    serve(int(sys.argv[1]))
