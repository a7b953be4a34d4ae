"""A warm parent that forks ``throughput`` processes and plain script runs on request (like Android's
zygote).

Importing torch (and torch._dynamo, which torch.optim pulls in on first use) costs seconds of CPU per
process; forking a process that already imported them costs milliseconds. Each child is a real, separate
process: it runs the real CLI (``main(argv)``) or a script the way ``python script.py`` does (``runpy``
as ``__main__``, the script's folder first on ``sys.path``, its exit status and traceback), with its own
stdout/stderr files, working folder and environment. The server runs no torch op itself and uses one
thread, so forking is safe. Tests that are about a fresh interpreter (tracebacks, the console script,
``python -m``) keep real ``subprocess`` runs.

Protocol (JSON lines on the server's stdin/stdout):
    {"op": "spawn" | "script", "argv": [...], "env": {...}, "cwd": "...", "stdout": "path",
     "stderr": "path", "log": "path"}                          -> {"pid": N}
    {"op": "wait", "pid": N}                                    -> {"exit": code}  (-9 for SIGKILL)
``log`` receives stdout and stderr both when the separate files are not given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _child(cmd: dict[str, Any]) -> None:
    import atexit
    import traceback

    os.environ.update(cmd.get("env") or {})
    if cmd.get("cwd"):
        os.chdir(cmd["cwd"])
    for fd, key in ((1, "stdout"), (2, "stderr")):
        target = os.open(cmd.get(key) or cmd.get("log") or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
    code = 98
    try:
        code = _run_script(cmd["argv"]) if cmd["op"] == "script" else _run_cli(cmd["argv"])
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException:
        traceback.print_exc()
        code = 1 if cmd["op"] == "script" else 99
    finally:
        try:
            atexit._run_exitfuncs()     # as an interpreter exit would (the script's own handlers included)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _run_cli(argv: list[str]) -> int:
    import throughput.cli.main

    return throughput.cli.main.main(argv)


def _run_script(argv: list[str]) -> int:
    """``python script.py args...``: __main__, argv, the script's folder first on sys.path."""
    import runpy

    sys.argv = list(argv)
    sys.path[0] = str(Path(argv[0]).resolve().parent)
    runpy.run_path(argv[0], run_name="__main__")
    return 0


def _exit_code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def serve() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch
    import torch._dynamo  # noqa: F401  (torch.optim imports it on first use: seconds, paid once here)
    import torch.utils.data  # noqa: F401

    import throughput.capture.zerocode  # noqa: F401
    import throughput.cli.main  # noqa: F401
    import throughput.loop.loop  # noqa: F401

    torch.set_num_threads(1)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] in ("spawn", "script"):
            pid = os.fork()
            if pid == 0:
                _child(cmd)
            print(json.dumps({"pid": pid}), flush=True)
        elif cmd["op"] == "wait":
            _, status = os.waitpid(cmd["pid"], 0)
            print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


@dataclass(frozen=True)
class Finished:
    """What ``subprocess.run(..., capture_output=True, text=True)`` would return."""

    returncode: int
    stdout: str
    stderr: str


class Zygote:
    """Drives ``python tests/zygote.py``: real processes without paying torch's import each time."""

    def __init__(self) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__))], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert json.loads(self._readline()) == {"ready": True}

    def spawn(self, argv: list[str], env: dict[str, str] | None = None, log: Path | None = None, *,
              op: str = "spawn", cwd: Path | None = None, stdout: Path | None = None,
              stderr: Path | None = None) -> int:
        """Start ``throughput <argv...>`` (op "spawn") or ``python <argv...>`` (op "script") in a forked
        child; its pid."""
        cmd = {"op": op, "argv": [str(a) for a in argv], "env": env or {}, "log": str(log or os.devnull),
               "cwd": str(cwd) if cwd else None, "stdout": str(stdout) if stdout else None,
               "stderr": str(stderr) if stderr else None}
        return int(self._ask(cmd)["pid"])

    def wait(self, pid: int) -> int:
        """The child's exit code (negative signal number when killed)."""
        return int(self._ask({"op": "wait", "pid": pid})["exit"])

    def start(self, argv: list[str], files: Path, *, op: str = "spawn", cwd: Path | None = None) -> "Running":
        """Like ``spawn`` with stdout and stderr captured to ``files``.stdout / .stderr."""
        files.parent.mkdir(parents=True, exist_ok=True)
        out, err = files.with_suffix(".stdout"), files.with_suffix(".stderr")
        for f in (out, err):
            f.write_text("")
        return Running(self, self.spawn(argv, op=op, cwd=cwd, stdout=out, stderr=err), out, err)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def _ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._readline())  # type: ignore[no-any-return]

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the zygote process died")
        return line


@dataclass(frozen=True)
class Running:
    zygote: Zygote
    pid: int
    stdout: Path
    stderr: Path

    def result(self) -> Finished:
        code = self.zygote.wait(self.pid)
        return Finished(returncode=code, stdout=self.stdout.read_text(), stderr=self.stderr.read_text())


if __name__ == "__main__":
    serve()
