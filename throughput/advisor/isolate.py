"""Fresh-process probes on CPU: each probe runs in its own child, forked from a clean server process.

Why (measured on the memory-limited benchmark workload, bf16, ``benchmarks/advisor.py``): in one
long-lived probing process the CPU peak of a configuration depends on what ran before it. oneDNN keeps
a primitive cache per shape, so the first probe of a size adds ~3.5 MiB that a repeat does not (33.0 vs
29.5 MiB at micro-batch 8), and glibc's heap keeps what earlier, larger probes freed. A fit over a mix
of cold and warm points predicted 25.4 MiB for a measured 33.1 MiB (23% off). In a fresh child per
probe every point is measured from the same clean baseline: repeats agree within 0.2 MiB, and the fit
of two smaller sizes predicts the chosen one within 1%. The parent, which decides, never touches the
probes' memory.

Why a server and not ``os.fork()`` of the advisor itself: a process whose OpenMP pool already ran
parallel work cannot fork safely (GNU libgomp: the child hangs in its first parallel region; reproduced
with torch 2.13 and 2 threads). The server is a fresh interpreter (``python -c``) that imports torch and
``throughput.advisor._prime``, which runs one tiny fp32 and bf16 training step single-threaded, so the
process-wide one-time costs (library loading, oneDNN initialisation) are paid once, not in every probe;
a child then sets the parent's thread count and runs one probe. Not ``multiprocessing``'s forkserver:
its children re-import the parent's ``__main__`` (a user script, re-run for every probe). CUDA probes
stay in-process: the caching allocator's own counters are exact there, and a child would pay a CUDA
context per probe.

Bounded: a child that does not answer within its time limit is killed; one killed by the kernel's
out-of-memory killer (SIGKILL) is reported as out of memory. Children are always reaped.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any, Callable

import torch

from throughput.advisor.trials import Config, ProbeResult, is_oom, one_line

EXIT_GRACE_S = 30.0          # the child's own limit covers the measured steps; this covers start and build
_server: tuple[subprocess.Popen[bytes], Connection] | None = None
_shown: set[str] = set()                 # probe warnings already printed by this process


def can_isolate(build: Callable[..., Any]) -> bool:
    """True where probes can run in fresh children: POSIX fork, no CUDA, a picklable build."""
    if torch.cuda.is_available() or not hasattr(os, "fork") or not sys.platform.startswith("linux"):
        return False
    try:
        blob = pickle.dumps(build)
    except Exception:  # noqa: BLE001 - any pickling failure (lambda, local class, open handle) means no
        return False
    return b"__main__" not in blob        # the server cannot re-import the parent's main script


def serve(fd: int) -> None:
    """The server's loop (in its own interpreter): for each pickled probe request, fork a child that runs
    it and writes its pickled ``ProbeResult`` to a pipe; report the child's pid, then (result, status)."""
    conn = Connection(fd)
    sys.path[:] = conn.recv()
    import throughput.advisor._prime  # noqa: F401 - primes this process once (see the module docstring)
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return                        # the parent is gone or done
        if request == b"ping":
            conn.send("pong")
            continue
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                      # the child: one probe, then exit without cleanup handlers
            os.close(r)
            conn.close()
            _run_child(request, w)
        os.close(w)
        conn.send(pid)
        _, status = os.waitpid(pid, 0)
        conn.send((_read_available(r), status))
        os.close(r)


def _run_child(request: bytes, w: int) -> None:
    with warnings.catch_warnings(record=True) as caught:   # relayed, so the parent shows each once
        warnings.simplefilter("always")
        try:
            make, config, steps, threads = pickle.loads(request)
            torch.set_num_threads(threads)
            result = make().run(config, steps)
        except BaseException as e:  # noqa: BLE001 - whatever happens, the parent gets one line
            result = ProbeResult(oom=is_oom(e), error=one_line(e))
    texts = list(dict.fromkeys(f"{c.category.__name__}: {c.message}"[:500] for c in caught))[:20]
    os.write(w, pickle.dumps((result, texts)))  # small (< 64 KiB pipe buffer): never blocks
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _read_available(fd: int) -> bytes:
    """What the child wrote. Non-blocking: loader workers the child forked may still hold the write end."""
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def start_server() -> float:
    """Start the probe server now (otherwise the first isolated probe does); seconds it took to answer
    (interpreter start, torch import, priming: a one-time cost per advisor process)."""
    t0 = time.perf_counter()
    conn = _connection()
    conn.send_bytes(b"ping")
    conn.recv()
    return time.perf_counter() - t0


def _connection() -> Connection:
    global _server
    if _server is None or _server[0].poll() is not None:
        mine, theirs = Pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen([sys.executable, "-c", f"from throughput.advisor.isolate import serve; "
                                 f"serve({theirs.fileno()})"], pass_fds=[theirs.fileno()], env=env)
        theirs.close()
        mine.send(list(sys.path))
        _server = (proc, mine)
        atexit.register(_stop, proc, mine)
    return _server[1]


def _stop(proc: subprocess.Popen[bytes], conn: Connection) -> None:
    conn.close()                          # the server sees EOF and returns
    try:
        proc.wait(5.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_isolated(make: Callable[[], Any], config: Config, steps: int, time_limit_s: float) -> ProbeResult:
    """Run ``make().run(config, steps)`` in a fresh child of the probe server and return its result.
    ``make`` must be picklable and build an in-process target (``WorkloadTarget(..., isolate=False)``)."""
    global _server
    conn = _connection()
    try:
        conn.send_bytes(pickle.dumps((make, dict(config), steps, torch.get_num_threads())))
        pid = conn.recv()
        timed_out = not conn.poll(time_limit_s + EXIT_GRACE_S)
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        data, status = conn.recv()
    except (EOFError, OSError) as e:      # the server itself died: report it, start a new one next time
        if _server is not None:
            _stop(*_server)
        _server = None
        return ProbeResult(error=f"probe server stopped ({one_line(e)}); the probe was not run")
    if data and not timed_out:
        result, texts = pickle.loads(data)
        for text in texts:
            if text not in _shown:
                _shown.add(text)
                print(f"probe warning: {text}", file=sys.stderr)
        return result
    if timed_out:
        return ProbeResult(error=f"probe did not finish within {time_limit_s + EXIT_GRACE_S:.0f} s; killed")
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    if killed:   # the kernel's out-of-memory killer sends SIGKILL
        return ProbeResult(oom=True, error="probe process killed (SIGKILL) before reporting: out of memory")
    return ProbeResult(error=f"probe process ended (wait status {status}) before reporting")
