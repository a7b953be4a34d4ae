"""The live progress line (a terminal yes, a pipe no) and Ctrl-C around the report, with real
signals sent to real subprocesses. Nothing here asserts how long anything takes."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import textwrap
from pathlib import Path

import pytest

from tests.cli.profile_helpers import _env, forked_profiled
from tests.terminal_screen import Screen
from tests.zygote import Zygote

# Trains a tiny model for argv[1] seconds of wall time, then prints its last line. The loop runs on time,
# not on a step count; no test asserts the duration. The progress line is first drawn one second after
# the profiler starts (a timer, whatever the load) and the script's clock starts after that, so a 1.5 s
# run outlasts the first draw by more than half a second (and a pipe gets the same chance not to draw).
TRAIN = textwrap.dedent("""
    import sys, time, torch
    print("script started", flush=True)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < float(sys.argv[1]):
        loss = model(torch.randn(8, 4)).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        time.sleep(0.002)
    print("script done", flush=True)
""")

# The same, but the script installs an audit hook that sends this very process SIGINT (Ctrl-C) when
# the report writer opens the temp file of each named report file: the signals arrive while the
# report is being written, whatever the machine's speed.
INTERRUPTING = TRAIN + textwrap.dedent("""
    import os, signal
    TARGETS = sys.argv[2].split(",")
    def hook(event, args):
        if event == "open" and args and isinstance(args[0], str):
            name = os.path.basename(args[0])
            for t in list(TARGETS):
                if name.startswith("." + t + "."):
                    TARGETS.remove(t)
                    os.kill(os.getpid(), signal.SIGINT)
    sys.addaudithook(hook)
""")


def _profile_argv(script: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "throughput", "profile", "--no-telemetry", "--out", str(out), *extra,
            str(script)]


def _run_on_pty(argv: list[str], size: tuple[int, int] | None = None) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal (stdout on a pipe; on the terminal too when it has a
    ``size``, rows x columns); return the exit status and what the terminal received."""
    master, slave = pty.openpty()
    if size is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    env = {**_env(), "TERM": "xterm-256color"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE if size is None else slave, stderr=slave, env=env,
                            text=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:      # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    proc.communicate(timeout=120)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_progress_line_on_a_terminal_and_not_on_a_pipe(tmp_path: Path, zygote: Zygote) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    code, tty_err = _run_on_pty(_profile_argv(script, tmp_path / "tty") + ["1.5"])
    assert code == 0, tty_err
    assert "throughput: step " in tty_err and "/step" in tty_err          # the status line was drawn
    assert f"writing report to {tmp_path / 'tty'}/" in tty_err and "report written in" in tty_err
    # The runs without a terminal are forked from the warm zygote (stderr to a file, which is no TTY
    # either), with --no-plots (forked_profiled's default)
    piped = forked_profiled(zygote, script, ["1.5"], tmp_path / "pipe", ["--no-telemetry"],
                            files=tmp_path / "pipe-output")
    assert piped.returncode == 0, piped.stderr
    assert "throughput: step " not in piped.stderr                           # not on a pipe
    assert "writing report to" in piped.stderr
    forced = forked_profiled(zygote, script, ["1.5"], tmp_path / "forced", ["--no-telemetry", "--progress"],
                             files=tmp_path / "forced-output")
    assert "throughput: step " in forced.stderr                              # --progress forces it
    # --quiet wins over --progress; --no-plots (the advisor's probes) leaves out only the PNGs
    quiet = forked_profiled(zygote, script, ["0.2"], tmp_path / "quiet", ["--no-telemetry", "--quiet", "--progress"],
                            files=tmp_path / "quiet-output")
    assert quiet.returncode == 0 and quiet.stderr == ""                      # --quiet: nothing of ours
    plotted = {p.name for p in (tmp_path / "tty").iterdir()}
    unplotted = {p.name for p in (tmp_path / "quiet").iterdir()}
    assert "step_breakdown.png" in plotted and {"session.json", "report.md", "trace.json"} <= unplotted
    assert not [n for n in unplotted if n.endswith(".png")]
    assert "Plots" not in (tmp_path / "quiet" / "report.md").read_text()


# Prints a numbered line every 50 steps while it trains for argv[1] seconds (the line is drawn meanwhile).
PRINTING = TRAIN.replace("    time.sleep(0.002)\n", "    time.sleep(0.002)\n"
                         "    printed = globals().get('printed', 0)\n"
                         "    if printed % 50 == 0: print(f'script line {printed // 50}', flush=True)\n"
                         "    globals()['printed'] = printed + 1\n")
assert PRINTING != TRAIN


@pytest.mark.slow
def test_on_a_sized_terminal_the_scripts_output_stays_intact(tmp_path: Path) -> None:
    """stdout and stderr on one terminal of 12 x 70: the line keeps the bottom row while the script's
    lines scroll above it, and the terminal is given back whole (what it shows is worked out from the
    bytes it received)."""
    script = tmp_path / "train.py"
    script.write_text(PRINTING)
    rows, columns = 12, 70
    code, received = _run_on_pty(_profile_argv(script, tmp_path / "out", "--no-plots") + ["1.5"], (rows, columns))
    assert code == 0, received
    assert "\x1b[1;11r" in received and "throughput: step " in received         # the line had its row
    screen = Screen(rows, columns)
    screen.feed(received)
    lines = screen.scrolled_off + screen.visible()
    printed = [line for line in lines if line.startswith("script line ")]
    assert printed == [f"script line {k}" for k in range(len(printed))] and len(printed) >= 2   # whole, in order
    assert not [line for line in lines if "script" in line and "throughput:" in line]           # never mixed
    assert (screen.top, screen.bottom) == (0, rows - 1)                       # the region is reset
    assert "script done" in lines and any("report written in" in line for line in lines)


def test_first_ctrl_c_during_the_report_is_announced_and_the_report_finished(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(INTERRUPTING)
    out = tmp_path / "report"
    done = subprocess.run(_profile_argv(script, out) + ["0.3", "summary.json"], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert "finishing the report; press Ctrl-C again to abort" in done.stderr
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert {"session.json", "summary.json", "report.md", "trace.json"} <= {p.name for p in out.iterdir()}


def test_second_ctrl_c_aborts_the_report_keeping_whole_files(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(INTERRUPTING)
    out = tmp_path / "report"
    done = subprocess.run(_profile_argv(script, out) + ["0.3", "summary.json,report.md"], capture_output=True,
                          text=True, env=_env(), timeout=120)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "report aborted; kept in" in done.stderr
    names = {p.name for p in out.iterdir()}
    # report.md is written last (it lists the plots, drawn meanwhile by a child process): the second
    # Ctrl-C lands while it is being written, and what came before it is there whole
    assert {"session.json", "summary.json", "trace.json", "steps.jsonl"} <= names and "report.md" not in names
    assert not [n for n in names if n.endswith(".tmp")]                      # no half-written file
    reread = subprocess.run([sys.executable, "-m", "throughput", "report", str(out)], capture_output=True,
                            text=True, env=_env(), timeout=120)
    assert reread.returncode == 0 and "steps:" in reread.stdout              # the session is whole


def test_ctrl_c_before_the_script_starts_exits_130_without_a_traceback(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    # -X importtime reports each module as its import completes (import statements only).
    # throughput.capture.runner is imported by the profile command inside the command line's Ctrl-C
    # handling, before the command imports torch (a second or more), all of which comes before the
    # script runs.
    argv = [sys.executable, "-X", "importtime", "-m", "throughput", "profile", "--no-telemetry", "--out",
            str(tmp_path / "r"), str(script), "0.2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.rsplit("|", 1)[-1].strip() == "throughput.capture.runner":
            proc.send_signal(signal.SIGINT)
            break
    rest_out, rest_err = proc.communicate(timeout=120)
    stderr = "".join(seen) + rest_err
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "throughput: interrupted" in stderr
    assert "script started" not in rest_out
