"""A warm parent that forks ``throughput train`` processes on request (like Android's zygote).

Importing torch takes seconds on a loaded machine; forking a process that already imported it takes
milliseconds. Each child is a real, separate process running the real CLI; the test SIGKILLs it.
Started with OMP_NUM_THREADS=1 and never runs a torch op itself, so forking is safe.

Protocol (JSON lines on stdin/stdout):
    {"op": "spawn", "argv": [...], "env": {...}, "log": "path"}  -> {"pid": N}
    {"op": "wait", "pid": N}                                     -> {"exit": code}  (-9 for SIGKILL)
"""

from __future__ import annotations

import json
import os
import sys

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import torch  # noqa: E402
import torch._dynamo  # noqa: E402,F401  (torch.optim imports it on first use: ~2 s, paid once here)

import throughput.cli.main  # noqa: E402
import throughput.loop.loop  # noqa: E402,F401

torch.set_num_threads(1)


def _child(cmd: dict) -> None:
    os.environ.update(cmd.get("env") or {})
    log = os.open(cmd.get("log") or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    code = 98
    try:
        code = throughput.cli.main.main(cmd["argv"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 99
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                _child(cmd)
            print(json.dumps({"pid": pid}), flush=True)
        elif cmd["op"] == "wait":
            _, status = os.waitpid(cmd["pid"], 0)
            print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
