"""`throughput profile` end to end: attribution accuracy, how runs end, and bad input."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.profile_helpers import (DATA, REPO, _env, forked_plain, forked_profiled, load_json, run_plain,
                                      run_profiled)
from tests.zygote import Zygote
from throughput.analysis.verdict import INPUT_BOUND_SHARE
from throughput.cli.main import main


def test_attribution_accuracy_through_the_cli(tmp_path: Path, zygote: Zygote) -> None:
    """Each phase's recorded time lies between the truth the workload measured itself: the time its
    injected sleeps really took (a phase cannot be shorter) and the time of the calls that contain the
    phase, read outside them (it cannot be longer). Both bounds hold under any load; misattributing
    one step's 10 ms of data wait to forward would break forward's upper bound (6 ms + a little)."""
    out, truth_file = tmp_path / "report", tmp_path / "truth.json"
    proc = forked_profiled(zygote, DATA / "injected_sleeps.py", ["16", str(truth_file)], out)
    assert proc.returncode == 0, proc.stderr
    truth = load_json(truth_file)
    steps = load_json(out / "session.json")["steps"]
    assert len(steps) == 16
    for phase in ("data", "forward", "backward", "optimizer"):
        recorded = math.fsum(s["phase_s"].get(phase, 0.0) for s in steps)
        assert truth[phase]["slept_s"] <= recorded <= truth[phase]["call_s"], (phase, recorded, truth[phase])
    # per step, injected: data 2 samples x 5 ms = 10 ms, forward 6 ms, backward 12 ms, optimizer 4 ms
    assert truth["data"]["slept_s"] >= 16 * 0.010 and truth["backward"]["slept_s"] >= 16 * 0.012
    summary = load_json(out / "summary.json")
    shares = {p["phase"]: p["share"] for p in summary["phases"]}
    assert (summary["verdict"]["kind"] == "input_bound") == (shares["data"] >= INPUT_BOUND_SHARE)


def test_crash_on_line_one_keeps_traceback_and_status(tmp_path: Path) -> None:
    script = DATA / "crash_line1.py"
    plain, profiled = run_plain(script), run_profiled(script, out=tmp_path / "r")
    assert plain.returncode == profiled.returncode == 1
    assert profiled.stderr.startswith(plain.stderr)          # same traceback, then our report
    assert plain.stderr.splitlines()[-1] == "RuntimeError: boom on line 1"
    summary = load_json(tmp_path / "r" / "summary.json")
    assert summary["end"] == "exception" and summary["partial"] and summary["steps"]["total"] == 0


@pytest.mark.slow
def test_exception_inside_hooked_backward_has_the_plain_traceback(tmp_path: Path) -> None:
    script = DATA / "crash_in_backward.py"
    plain, profiled = run_plain(script), run_profiled(script, out=tmp_path / "r")
    assert plain.returncode == profiled.returncode == 1
    assert profiled.stderr.startswith(plain.stderr)          # our wrapper frames are not shown
    assert "throughput" not in plain.stderr and "throughput/capture" not in profiled.stderr
    session = load_json(tmp_path / "r" / "session.json")
    assert len(session["steps"]) == 2                        # steps 0 and 1 finished; step 2 crashed
    assert session["info"]["end_detail"] == "ValueError: exploded in backward"


def test_sys_exit_code_is_kept_and_reported(tmp_path: Path, zygote: Zygote) -> None:
    proc = forked_profiled(zygote, DATA / "exits_3.py", out=tmp_path / "r")
    assert proc.returncode == 3                               # the script calls sys.exit(3)
    assert proc.stdout == "leaving with 3\n"
    session = load_json(tmp_path / "r" / "session.json")
    assert session["info"]["end"] == "system_exit" and session["info"]["exit_code"] == 3
    assert len(session["steps"]) == 3


def test_max_steps_stops_cleanly_with_overrides_noted(tmp_path: Path, zygote: Zygote) -> None:
    out = tmp_path / "r"
    proc = forked_profiled(zygote, DATA / "runs_until_signalled.py", out=out,
                        options=["--max-steps", "3", "--warmup-steps", "0", "--set", "amp=bf16"])
    assert proc.returncode == 0, proc.stderr
    summary = load_json(out / "summary.json")
    assert summary["steps"]["total"] == 3 and summary["end"] == "max_steps" and summary["partial"]
    assert any(n.startswith("overrides applied: amp=bf16") for n in summary["notes"])
    assert "Partial run" in (out / "report.md").read_text()


@pytest.mark.parametrize("signum, status, end, pure", [(signal.SIGTERM, -signal.SIGTERM, "terminated", "0"),
                                                       (signal.SIGTERM, -signal.SIGTERM, "terminated", "1"),
                                                       (signal.SIGINT, -signal.SIGINT, "interrupted", "0")])
def test_signals_write_the_report_and_keep_python_status(tmp_path: Path, signum: int, status: int,
                                                         end: str, pure: str) -> None:
    """Plain python dies by SIGTERM (-15) and, after KeyboardInterrupt, re-raises SIGINT (-2). With
    ``pure`` = 1 the C helper is not used (SIGTERM then unwinds the script: the documented fallback)."""
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "throughput", "profile", "--quiet", "--out", str(out),
           str(DATA / "runs_until_signalled.py")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(_env(), THROUGHPUT_PURE_PYTHON=pure))
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    session = load_json(out / "session.json")
    assert session["info"]["end"] == end and len(session["steps"]) >= 5


def test_sigterm_is_not_seen_by_the_script_and_the_report_is_written(tmp_path: Path) -> None:
    """Plain python dies by SIGTERM at once: no except or finally block runs, and the script sees the
    default handler. Under the profiler the same, after the report is written (``_sigterm.c``)."""
    from throughput.capture import runner
    if runner._sigterm is None:
        pytest.skip("the C helper (_sigterm.c) is not built: SIGTERM unwinds the script (documented)")
    outputs = []
    for profiled in (False, True):
        out = tmp_path / f"r{int(profiled)}"
        cmd = [sys.executable, *(["-m", "throughput", "profile", "--quiet", "--out", str(out)] if profiled else []),
               str(DATA / "sigterm_unseen.py")]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[1] == "ready\n", lines
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
        outputs.append((proc.returncode, lines + [stdout], stderr))
    assert outputs[0] == outputs[1] == (-signal.SIGTERM, ["handler 0\n", "ready\n", ""], "")
    session = load_json(tmp_path / "r1" / "session.json")
    assert session["info"]["end"] == "terminated" and len(session["steps"]) >= 5


def test_sigterm_while_the_main_thread_is_blocked_still_ends_the_process(tmp_path: Path) -> None:
    """The report needs the main thread back in Python code; one blocked in a long call (here a 60 s
    sleep, which does not run pending calls) is given ``SIGTERM_GRACE_S``, then dies by SIGTERM without
    a report, as without the profiler, instead of running on."""
    from throughput.capture import runner
    if runner._sigterm is None:
        pytest.skip("the C helper (_sigterm.c) is not built")
    script = tmp_path / "blocked.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\nprint('woke')\n")
    cmd = [sys.executable, "-m", "throughput", "profile", "--quiet", "--out", str(tmp_path / "r"), str(script)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=50)   # well before the sleep would end
    assert (proc.returncode, stdout, stderr) == (-signal.SIGTERM, "", "")


def test_a_forked_child_leaving_through_sys_exit_writes_no_report(tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = run_profiled(DATA / "forks_a_child.py", out=out, options=["--warmup-steps", "0"])
    assert proc.returncode == 0 and proc.stdout == "child exit 0\n", proc.stderr
    assert proc.stderr.count("writing report to") == 1
    summary = load_json(out / "summary.json")
    assert summary["end"] == "completed" and summary["steps"]["total"] == 6


def test_a_forked_child_dies_by_sigterm_at_once(tmp_path: Path) -> None:
    """A child forked by the script (multiprocessing's fork pool) inherits the SIGTERM handler, not our
    thread: it dies by SIGTERM as under plain python (Pool.terminate printed a traceback per worker)."""
    script = tmp_path / "terminate_child.py"
    script.write_text("import os, signal, time\n"
                      "child = os.fork()\n"
                      "if child == 0:\n"
                      "    time.sleep(60)\n"
                      "    os._exit(0)\n"
                      "os.kill(child, signal.SIGTERM)\n"
                      "print('child', os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))\n")
    plain, profiled = run_plain(script), run_profiled(script, out=tmp_path / "r", options=["--quiet"])
    assert plain.stdout == profiled.stdout == f"child {-signal.SIGTERM}\n"
    assert plain.stderr == profiled.stderr == ""


@pytest.mark.parametrize("args", [["a", "--", "b"], ["--", "x"], ["--out", "x"]])
def test_the_scripts_arguments_pass_through_untouched(tmp_path: Path, args: list[str]) -> None:
    script = tmp_path / "argv.py"
    script.write_text("import sys; print(sys.argv[1:])\n")
    proc = run_profiled(script, args, out=tmp_path / "r", options=["--quiet"])
    assert proc.returncode == 0 and proc.stdout == f"{args}\n", proc.stderr


def test_a_module_s_traceback_is_python_dash_m_s(tmp_path: Path) -> None:
    """``python -m`` shows runpy's two frames (``_run_module_as_main``, ``_run_code``) above the module's."""
    pkg = tmp_path / "zc_pkg_fails"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "train.py").write_text("raise RuntimeError('from a module')\n")
    plain = subprocess.run([sys.executable, "-m", "zc_pkg_fails.train"], capture_output=True, text=True,
                           env=_env(), cwd=tmp_path, timeout=120)
    profiled = subprocess.run([sys.executable, "-m", "throughput", "profile", "--quiet", "--no-plots", "--out",
                               str(tmp_path / "r"), "-m", "zc_pkg_fails.train"], capture_output=True, text=True,
                              env=_env(), cwd=tmp_path, timeout=120)
    assert plain.returncode == profiled.returncode == 1
    assert profiled.stderr == plain.stderr and "_run_module_as_main" in plain.stderr


def test_a_script_name_after_a_double_dash(tmp_path: Path) -> None:
    """``throughput profile -- -name.py``: the ``--`` ends our options (a script whose name starts with -)."""
    (tmp_path / "-dash.py").write_text("import sys; print(sys.argv)\n")
    proc = subprocess.run([sys.executable, "-m", "throughput", "profile", "--quiet", "--no-plots", "--out",
                           str(tmp_path / "r"), "--", "-dash.py", "a"], capture_output=True, text=True,
                          env=_env(), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "['-dash.py', 'a']\n", proc.stderr


def test_a_script_that_changes_directory_keeps_its_report_where_asked(tmp_path: Path) -> None:
    """--out is taken from the directory the command ran in (Hydra's job.chdir moves the script)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = tmp_path / "chdir.py"
    script.write_text(f"import os; os.chdir({str(elsewhere)!r})\n")
    proc = run_profiled(script, out=Path("r"), options=["--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r" / "session.json").exists() and not (elsewhere / "r").exists()


def test_two_runs_in_the_same_second_get_their_own_default_folders(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from throughput.cli import profile_cmd
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setattr(profile_cmd, "_run_name", lambda: "20261202-150000")
    made: list[Path] = []
    first, second = profile_cmd._default_out("train", made), profile_cmd._default_out("train", made)
    assert (first.name, second.name) == ("train-20261202-150000", "train-20261202-150000-2")
    assert first.is_dir() and second.is_dir()   # taken at once, not at the end of the run
    assert made == [tmp_path / "reports", first, second]
    profile_cmd._remove_if_empty(made)   # a run that wrote nothing leaves nothing behind
    assert not (tmp_path / "reports").exists()


def test_out_that_cannot_be_written_fails_up_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "missing" / "run")
    for out, fragment in ((tmp_path / "dangling", "is a link to a missing folder"),
                          (tmp_path / ("b" * 256), "too long")):
        assert main(["profile", "--out", str(out), str(DATA / "trains_nothing.py")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and fragment in err


def test_console_script_on_a_script_that_trains_nothing(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("throughput")
    if not exe.exists():
        pytest.skip("the `throughput` console script is not installed next to this python")
    proc = subprocess.run([str(exe), "profile", "--out", str(tmp_path / "r"), str(DATA / "trains_nothing.py")],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0 and proc.stdout == "hello 2.0\n"
    assert "no training steps were seen" in proc.stderr
    summary = load_json(tmp_path / "r" / "summary.json")
    assert summary["steps"]["total"] == 0 and summary["verdict"]["kind"] == "no_steps"


@pytest.mark.parametrize("argv, fragment", [
    (["profile", "missing_script.py"], "no such file: missing_script.py"),
    (["profile", str(REPO / "throughput" / "cli")], "is a directory"),
    (["profile", str(REPO / "pyproject.toml")], "is not a Python script"),
    (["profile", "--bogus", "x.py"], "unrecognized arguments: --bogus"),
    (["profile", "--set", "workers=2", "x.py"], "unknown override 'workers'; valid keys: micro_batch_size, amp"),
    (["profile", "--set", "amp=fp8", str(DATA / "trains_nothing.py")], "amp must be one of bf16 | fp16 | fp32"),
    (["profile", "--max-steps", "0", str(DATA / "trains_nothing.py")], "argument --max-steps: must be >= 1, got 0"),
    (["profile"], "no script given"),
    (["profile", "-m", "no_such_module_zz"], "no module named 'no_such_module_zz'"),
])
def test_bad_input_is_one_line_and_status_2(argv: list[str], fragment: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("throughput: error: profile: ") and fragment in err


def test_options_after_the_script_belong_to_the_script() -> None:
    from throughput.cli.profile_cmd import split_argv
    assert split_argv(["--out", "r", "train.py", "--out", "x", "-m"]) == (["--out", "r"],
                                                                         ["train.py", "--out", "x", "-m"])
    assert split_argv(["--quiet", "-m", "pkg.train", "--lr", "3"]) == (["--quiet", "-m", "pkg.train"],
                                                                        ["--lr", "3"])
    assert split_argv(["--set", "amp=bf16", "--", "-weird.py"]) == (["--set", "amp=bf16"], ["-weird.py"])


def test_dash_m_module_gets_its_args_and_is_profiled(tmp_path: Path, zygote: Zygote) -> None:
    out = tmp_path / "r"
    proc = forked_profiled(zygote, None, cwd=REPO, files=tmp_path / "proc",
                           options=["--out", str(out), "-m", "examples.zerocode.exec_config", "--max_iters=3",
                                    "--batch_size=2"])
    assert proc.returncode == 0, proc.stderr
    # the script echoes its exec-built config: defaults with the two overrides from its argv
    assert proc.stdout == ("config [('batch_size', 2), ('learning_rate', 0.01), ('max_iters', 3)]\n"
                           "updates 3\n")
    assert len(load_json(out / "session.json")["steps"]) == 3


def test_a_script_with_its_own_profiler_still_runs(tmp_path: Path, zygote: Zygote) -> None:
    script = DATA / "embeds_profiler.py"
    plain = forked_plain(zygote, script, [], tmp_path / "plain")
    profiled = forked_profiled(zygote, script, out=tmp_path / "r")
    assert plain.returncode == profiled.returncode == 0, profiled.stderr
    assert plain.stdout == profiled.stdout == "own profiler steps 4\n"
    assert len(load_json(tmp_path / "r" / "session.json")["steps"]) == 4   # 4 SGD updates seen by hooks


FINALIZER_SCRIPT = """import os, sys

OUT, MARK = os.environ["REPORT_DIR"], os.environ["MARK_FILE"]


class Held:   # what a DataLoader's workers, a file or a logger do when they are freed
    # (what it uses is bound now: at interpreter exit the builtins may be gone, in a plain run as here)
    def __del__(self, open=open, exists=os.path.exists, join=os.path.join, out=OUT, mark=MARK):
        with open(mark, "w") as f:
            f.write("report written first" if exists(join(out, "session.json")) else "before")


def uses_the_globals():   # a function: the module's globals are in a reference cycle, as in any script
    return held


held = Held()
print("done")
"""


def test_the_script_s_globals_are_freed_at_exit_as_in_python_not_during_the_report(tmp_path: Path) -> None:
    """Python keeps ``__main__`` until the interpreter shuts down, so a script's globals' finalizers run
    after everything else; freed by a garbage collection inside the report, a DataLoader with
    persistent workers waited 5 s a worker. The finalizer runs once the report is on disk."""
    script, out, mark = tmp_path / "held.py", tmp_path / "report", tmp_path / "mark.txt"
    script.write_text(FINALIZER_SCRIPT)
    env = {**_env(), "REPORT_DIR": str(out), "MARK_FILE": str(mark)}
    done = subprocess.run([sys.executable, "-m", "throughput", "profile", "--no-plots", "--quiet", "--out", str(out),
                           str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n" and mark.read_text() == "report written first"


ATEXIT_SEES_THE_FAILURE = """\
import atexit, sys, weakref
class Held: pass
ref = None
def report():
    print("alive", ref() is not None, "last_traceback", hasattr(sys, "last_traceback"), file=sys.stderr)
atexit.register(report)
def fail():
    global ref
    held = Held()
    ref = weakref.ref(held)
    raise ValueError("boom")
fail()
"""

# A multi-worker DataLoader whose iterator fails half-built (pin_memory's CPU warning made an error):
# python finalizes it at shutdown, quietly; freed as the exception is dropped it printed its __del__'s error
HALF_BUILT_ITERATOR = """\
import warnings
from torch.utils.data import DataLoader
warnings.simplefilter("error")
for batch in DataLoader(list(range(8)), batch_size=4, num_workers=1, pin_memory=True):
    print(batch)
"""


def _plain_and_profiled(tmp_path: Path, source: str) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(exit code, stdout, stderr) of ``source`` run by python and by ``throughput profile --quiet`` (whose
    own lines, starting "throughput:", are left out of its stderr)."""
    script = tmp_path / "script.py"
    script.write_text(source)
    plain = run_plain(script)
    profiled = run_profiled(script, out=tmp_path / "report", options=["--quiet"])
    ours = "\n".join(line for line in profiled.stderr.splitlines() if not line.startswith("throughput:"))
    return (plain.returncode, plain.stdout, plain.stderr.rstrip("\n")), (profiled.returncode, profiled.stdout, ours)


@pytest.mark.parametrize("source", [ATEXIT_SEES_THE_FAILURE, HALF_BUILT_ITERATOR], ids=["atexit", "dataloader"])
def test_an_uncaught_exception_s_frames_live_until_exit_as_in_python(tmp_path: Path, source: str) -> None:
    plain, profiled = _plain_and_profiled(tmp_path, source)
    assert profiled == plain and plain[0] == 1


# A C++ warning (TORCH_WARN) is reported at the innermost Python frame: the script's line in a plain run.
WARNS_IN_TENSOR_TO = """\
import warnings, torch
warnings.filterwarnings("error", category=UserWarning, module="__main__")   # -W error::UserWarning:__main__
z = torch.ones(3, dtype=torch.cfloat)
try:
    z.to(torch.float32)
except UserWarning as e:
    print("raised at the script's line:", e)
"""


def test_a_warning_raised_inside_tensor_to_is_the_script_s(tmp_path: Path) -> None:
    plain, profiled = _plain_and_profiled(tmp_path, WARNS_IN_TENSOR_TO)
    assert profiled == plain
    assert "raised at the script's line" in plain[1]   # with a frame of ours innermost: printed, not raised


# A forward's and a backward's traceback and a warning counted with stacklevel from inside them: with a
# Python wrapper of ours around nn.Module.__call__ and Tensor.backward, each traceback showed our frame and
# the warnings named our file (and, both at one line of ours, the second was not printed).
TRACEBACKS_THROUGH_FORWARD_AND_BACKWARD = """\
import traceback, warnings, torch
torch.manual_seed(0)
class Doubled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2
    @staticmethod
    def backward(ctx, grad):
        warnings.warn("from backward", stacklevel=5)   # the caller of loss.backward()
        if grad.abs().sum() > 1e9:
            raise ValueError("grad too large")
        return grad * 2
class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
    def forward(self, x):
        warnings.warn("from forward", stacklevel=4)    # the caller of model(x)
        return Doubled.apply(self.linear(x))
model = Model()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    loss = model(torch.randn(2, 4)).sum()
    loss.backward()
    opt.step()
    opt.zero_grad()
for bad in (lambda: model(torch.randn(2, 5)), lambda: (model(torch.randn(2, 4)) * 1e12).sum().backward(),
            lambda: torch.autograd.backward((model(torch.randn(2, 4)) * 1e12).sum())):
    try:
        bad()
    except Exception:
        traceback.print_exc()
print(repr(model.linear.weight.sum().item()))
"""


def test_tracebacks_and_warnings_through_a_forward_and_a_backward_read_as_in_a_plain_run(tmp_path: Path) -> None:
    from throughput.capture.recorder import bypass_type
    if bypass_type("Around") is None:
        pytest.skip("the C helper is not built (THROUGHPUT_PURE_PYTHON or no compiler): Python wrappers")
    plain, profiled = _plain_and_profiled(tmp_path, TRACEBACKS_THROUGH_FORWARD_AND_BACKWARD)
    assert profiled == plain and plain[0] == 0
    assert plain[2].count("Traceback (most recent call last)") == 3 and "throughput" not in plain[2]


def test_the_script_sees_python_s_orig_argv(tmp_path: Path) -> None:
    """sys.orig_argv held throughput's whole command line (`-m throughput profile --out ... script.py`)."""
    plain, profiled = _plain_and_profiled(tmp_path, "import sys\nprint(sys.orig_argv[1:], sys.argv[1:])\n")
    assert profiled == plain and plain[1].endswith("script.py'] []\n")


# The script's module frame is the bottom of the stack, as in a plain run: stack walks listed throughput's
# CLI and runner frames below it (inspect.stack() at module level: 11 frames instead of 1), and a
# module-level warning with stacklevel=2 named our runner instead of sys:1.
STACK_WALKS = """\
import inspect, logging, sys, traceback, warnings
print(len(inspect.stack()))
warnings.warn("module level", stacklevel=2)
def walk():
    traceback.print_stack()
    logging.getLogger("probe").warning("here", stack_info=True)
walk()
try:
    sys._getframe(1)
except ValueError as e:
    print("ValueError:", e)
"""


def test_stack_walks_end_at_the_script_as_in_a_plain_run(tmp_path: Path) -> None:
    from throughput.capture.recorder import bypass_type
    if bypass_type("detached") is None or sys.version_info[:2] != (3, 11):
        pytest.skip("the C helper's detached call (CPython 3.11) is not available: our frames stay below")
    plain, profiled = _plain_and_profiled(tmp_path, STACK_WALKS)
    assert profiled == plain and plain[1].startswith("1\n") and "sys:1: UserWarning" in plain[2]
