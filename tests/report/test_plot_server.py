"""The plot server started with a run: it draws what drawing here would, it is nobody's child, it goes
away with the run, and a script that forks or closes descriptors never gets its pipes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from tests.cli.profile_helpers import REPO, run_plain, run_profiled
from tests.report.test_plot_worker import _job
from throughput.report import plot_server
from throughput.report.plot_job import draw, usable_cores
from throughput.report.plot_worker import PlotProcess

PLOTS = ["step_breakdown.png", "throughput.png", "loss.png"]


@pytest.fixture(autouse=True)
def _plots_in_a_server() -> Iterator[None]:
    pytest.importorskip("matplotlib")
    if usable_cores() < 2:
        pytest.skip("one usable core: no plot process is started, the plots are drawn in the process itself")
    yield
    plot_server.discard()


def _started() -> plot_server.PlotServer:
    plot_server.prestart()
    server = plot_server.take()
    assert server is not None, "a server should start here (two cores, matplotlib, one rank)"
    return server


def _gone(pid: int, within_s: float = 60.0) -> bool:
    """Whether process ``pid`` has exited (a zombie counts as exited) within ``within_s``: a liveness
    wait with room for a loaded machine, not a timing claim."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_the_server_draws_the_files_drawing_here_would(tmp_path: Path) -> None:
    plot_server.prestart()
    proc = PlotProcess(_job(tmp_path / "server")).start()
    assert proc._server is not None and plot_server.take() is None   # handed over once
    there = proc.finish()
    here = draw(_job(tmp_path / "here"))
    assert there.missing is None and here.missing is None
    assert [p.name for p in there.files] == [p.name for p in here.files] == PLOTS
    assert [p.parent for p in there.files] == [tmp_path / "server"] * 3
    for png in there.files:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (tmp_path / "server").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_the_server_is_no_child_of_the_run_and_its_launcher_is_reaped() -> None:
    server = _started()
    try:
        assert _parent_of(server.pid) != os.getpid()
        # the launcher was waited for: nothing of ours is left for the script's os.wait() to collect
        try:
            assert os.waitpid(-1, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            pass
    finally:
        server.close()
    assert _gone(server.pid)


def test_a_relative_folder_is_the_one_the_run_meant_after_a_chdir(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "start").mkdir()
    (tmp_path / "later").mkdir()
    monkeypatch.chdir(tmp_path / "start")
    plot_server.prestart()                  # the server's working directory: start/
    monkeypatch.chdir(tmp_path / "later")   # the script moved on
    result = PlotProcess(_job(Path("report"))).start().finish()
    assert [str(p) for p in result.files] == [f"report/{name}" for name in PLOTS]
    assert all((tmp_path / "later" / "report" / name).is_file() for name in PLOTS)
    assert not (tmp_path / "start" / "report").exists()


def test_a_server_that_died_leaves_the_plots_to_another_process(tmp_path: Path) -> None:
    plot_server.prestart()
    server = plot_server._prestarted
    assert server is not None
    os.kill(server.pid, signal.SIGKILL)
    assert _gone(server.pid)
    result = PlotProcess(_job(tmp_path)).start().finish()
    assert result.missing is None and [p.name for p in result.files] == PLOTS


def test_descriptors_the_script_closed_and_reused_are_neither_written_nor_closed(tmp_path: Path) -> None:
    server = _started()
    assert server._sock is not None
    number = server._sock.fileno()
    opened = os.open(tmp_path / "theirs.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(number)   # a script that closed every descriptor above 2, then opened a file ...
    theirs = os.dup2(opened, number)   # ... that got the number our socket had
    os.close(opened)
    try:
        assert server.submit(_job(tmp_path)) is False
        os.fstat(theirs)   # still open: let go of, not closed
    finally:
        os.close(theirs)
    assert (tmp_path / "theirs.txt").read_bytes() == b""
    assert _gone(server.pid)   # its socket's other end closed: it exits


def test_a_forked_child_drops_the_server_and_the_parent_keeps_it(tmp_path: Path) -> None:
    plot_server.prestart()
    server = plot_server._prestarted
    assert server is not None
    assert server._sock is not None
    fds = [server._sock.fileno()] + ([server._pidfd] if server._pidfd is not None else [])
    pid = os.fork()
    if pid == 0:   # a DataLoader worker, say: no server, and the pipe ends closed
        ok = plot_server.take() is None and all(_closed(fd) for fd in fds)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result = PlotProcess(_job(tmp_path)).start().finish()
    assert [p.name for p in result.files] == PLOTS


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_killing_the_drawing_removes_its_half_written_image(tmp_path: Path) -> None:
    plot_server.prestart()
    proc = PlotProcess(_job(tmp_path)).start()
    server = proc._server
    assert server is not None
    stale = tmp_path / f".step_breakdown.png.{server.pid}.tmp"
    stale.write_bytes(b"\x89PNG half")
    proc.kill()
    assert not stale.exists() and _gone(server.pid)


def test_a_ctrl_c_while_waiting_for_the_plots_lets_the_abort_kill_the_server(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    plot_server.prestart()
    proc = PlotProcess(_job(tmp_path)).start()
    server = proc._server
    assert server is not None
    os.kill(server.pid, signal.SIGSTOP)   # it cannot finish the plots (or exit) on its own now

    def interrupted(timeout_s: float) -> None:
        raise KeyboardInterrupt   # the second Ctrl-C, while the report waits for the plots

    monkeypatch.setattr(server, "reply", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            proc.finish()
        proc.kill()   # what write_report does on the way out of an aborted report
        assert _gone(server.pid, within_s=30)
    finally:
        if not _gone(server.pid, within_s=0):
            os.kill(server.pid, signal.SIGKILL)


_RUN = """
import sys
sys.path.insert(0, {repo!r})
from throughput.report import plot_server
plot_server.prestart()
print(plot_server._prestarted.pid, flush=True)
{then}
"""


@pytest.mark.parametrize("then", ["plot_server.discard()", "pass", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"],
                         ids=["no-job", "exit-without-a-word", "killed"])
def test_the_server_goes_away_with_its_run(then: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _RUN.format(repo=str(REPO), then=then)],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().isdigit(), proc.stderr
    assert _gone(int(proc.stdout))


@pytest.mark.parametrize("variable, value, starts", [("LOCAL_WORLD_SIZE", "4", False), ("WORLD_SIZE", "2", False),
                                                     ("LOCAL_WORLD_SIZE", "1", True), ("WORLD_SIZE", "x", False)])
def test_no_server_where_several_ranks_share_the_node(variable: str, value: str, starts: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv(variable, value)
    plot_server.prestart()
    server = plot_server.take()
    assert (server is not None) == starts
    if server is not None:
        server.close()


_SIGPIPE_DEFAULT = """
import os, signal, sys, time
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # as CLI tools do, to end quietly under `| head`
from throughput.report import plot_server
from throughput.report.plot_worker import PlotProcess
from tests.report.test_plot_worker import _job
plot_server.prestart()
server = plot_server._prestarted
os.kill(server.pid, signal.SIGKILL)
while os.path.exists(f"/proc/{{server.pid}}") and open(f"/proc/{{server.pid}}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
    time.sleep(0.05)
result = PlotProcess(_job(__import__("pathlib").Path({out!r}))).start().finish()
print("alive", [p.name for p in result.files])
"""


def test_a_dead_server_cannot_raise_sigpipe_in_a_script_that_restored_its_default(tmp_path: Path) -> None:
    code = _SIGPIPE_DEFAULT.format(repo=str(REPO), tests=str(REPO), out=str(tmp_path / "report"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout == f"alive {PLOTS}\n"


_SUBREAPER = """
import ctypes, os, sys
sys.path.insert(0, {repo!r})
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
from throughput.report import plot_server
plot_server.prestart()
try:
    left = os.waitpid(-1, os.WNOHANG)
except ChildProcessError:
    left = None
print(plot_server.take() is None, left)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="child subreapers are a Linux prctl")
def test_a_process_that_would_adopt_the_server_gets_none_and_no_child_left() -> None:
    """PID 1 in a container, or a subreaper: the orphaned server would come back as the script's child."""
    proc = subprocess.run([sys.executable, "-c", _SUBREAPER.format(repo=str(REPO))], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True None\n"


_WAITS = """
import os
try:
    os.wait()
    print("reaped a child")
except ChildProcessError:
    print("no child to wait for")
import torch
model, opt = torch.nn.Linear(4, 1), None
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(6):
    loss = model(torch.ones(2, 4)).sum()
    opt.zero_grad(); loss.backward(); opt.step()
try:
    os.wait()
    print("reaped a child")
except ChildProcessError:
    print("no child to wait for")
"""


def test_a_script_waiting_for_its_children_sees_the_same_under_the_profiler(tmp_path: Path) -> None:
    script = tmp_path / "waits.py"
    script.write_text(_WAITS)
    plain = run_plain(script)
    profiled = run_profiled(script, out=tmp_path / "report", plots=True)
    assert plain.returncode == profiled.returncode == 0, profiled.stderr
    assert plain.stdout == profiled.stdout == "no child to wait for\n" * 2
    assert (tmp_path / "report" / "step_breakdown.png").is_file()


def test_a_server_past_the_time_limit_is_stopped_and_the_report_says_so(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from throughput.report import plot_worker
    monkeypatch.setattr(plot_worker, "CHILD_TIMEOUT_S", 0.0)   # no reply can be in time
    plot_server.prestart()
    proc = PlotProcess(_job(tmp_path)).start()
    server = proc._server
    assert server is not None
    result = proc.finish()
    assert result.files == () and result.missing == "the plot process took over 0 s and was stopped"
    assert _gone(server.pid)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
