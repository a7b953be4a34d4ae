"""Run a script or ``-m module`` the way ``python`` does, and say how it ended.

Same ``sys.argv``, ``__main__``, ``sys.path[0]``, working directory and standard streams as
``python script.py args...``. An uncaught exception prints the same traceback (this module's frames
and the instrumentation's are left out) and gives exit status 1; ``sys.exit`` codes are kept;
Ctrl-C and SIGTERM end the process by the same signal once the report is written (see
``exit_by_signal``). The caller records the result; nothing here knows about profiling.

SIGTERM (with the C helper, ``_sigterm.c``): the script sees no handler and is not unwound; between two
of its bytecodes ``on_terminate`` gets the result (the caller writes its report) and the process then
dies by SIGTERM, as plain python would have at once. Without the helper, SIGTERM raises ``Terminated``
in the script (its ``finally`` blocks run) and the run ends through the normal path.
"""

from __future__ import annotations

import atexit
import builtins
import importlib.machinery
import importlib.util
import io
import os
import runpy
import signal
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from throughput.capture.recorder import bypass_type, helpers_allowed
from throughput.session.records import RunEnd

try:
    from throughput.capture import _sigterm
except ImportError:  # the optional C helper is not built: SIGTERM raises Terminated instead
    _sigterm = None  # type: ignore[assignment]

_PY_SUFFIXES = (".py", ".pyw")
_HIDDEN_DIRS = (str(Path(__file__).resolve().parent),)   # throughput/capture: ours, not the user's
_PACKAGE = Path(__file__).resolve().parent.parent
# Where a SIGTERM must not stop the main thread: a recorder, its retention or its totals mid-update
# (the report is built from them). Asked again at the next bytecode boundary (see _sigterm.c).
_RECORDING_FILES = frozenset(str(_PACKAGE / f) for f in (
    "capture/recorder.py", "capture/retention.py", "capture/profiler.py", "capture/stepping.py",
    "capture/steps.py", "session/accumulate.py"))
SIGTERM_GRACE_S = 5.0   # the main thread must reach Python code within this, else no report (see _sigterm.c)
_pending_signal: int | None = None
_atexit_registered = False


class TargetError(ValueError):
    """The script or module cannot be run (missing, a folder, not Python): a one-line message."""


class Terminated(BaseException):
    """Raised in the main thread by our SIGTERM handler so the run unwinds and reports."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What to run: ``path`` (as the user typed it) or ``module``, and its arguments."""

    path: str | None = None
    module: str | None = None
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.path is None) == (self.module is None):
            raise ValueError("a Target needs exactly one of path or module")

    @property
    def display(self) -> str:
        return f"-m {self.module}" if self.module else str(self.path)

    @property
    def stem(self) -> str:
        if self.module:
            return self.module.rsplit(".", 1)[-1]
        p = Path(str(self.path)).resolve()
        return p.name if p.is_dir() else p.stem


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """How the script ended. ``signal`` is set when the process must end by that signal."""

    end: RunEnd
    exit_code: int
    detail: str = ""
    signal: int | None = None


def check_target(target: Target) -> None:
    """Raise TargetError when ``target`` cannot be run, before anything is instrumented."""
    if target.module is not None:
        try:
            spec = importlib.util.find_spec(target.module)
        except (ImportError, ValueError) as e:
            raise TargetError(f"cannot import module {target.module!r}: {e}") from None
        if spec is None:
            raise TargetError(f"no module named {target.module!r}")
        return
    path = Path(str(target.path))
    if not path.exists():
        raise TargetError(f"no such file: {target.path} (check the path to the training script)")
    if path.is_dir():
        if not (path / "__main__.py").is_file():
            raise TargetError(f"{target.path} is a directory; give a Python script (or a folder with __main__.py)")
        return
    if path.suffix.lower() not in _PY_SUFFIXES and not _has_python_shebang(path):
        raise TargetError(f"{target.path} is not a Python script (expected a .py file)")


def run(target: Target, *, script_ended: Callable[[], None] | None = None,
        on_terminate: Callable[[RunResult], None] | None = None) -> RunResult:
    """Run ``target`` in this process like ``python`` would. Exceptions are printed, not raised,
    except the instrumentation's ``MaxStepsReached``, which ends the run with status 0.

    ``script_ended()`` is called first thing once the script's code has returned or raised, before its
    exception is printed, or been stopped by SIGTERM (a caller arms its Ctrl-C guard there). ``on_terminate(result)``: see the
    module docstring; without it, SIGTERM is handled as without the C helper."""
    from throughput.capture.hooks import MaxStepsReached
    old_argv, old_path0, old_main = list(sys.argv), (sys.path[0] if sys.path else None), sys.modules["__main__"]
    old_orig_argv = list(getattr(sys, "orig_argv", ()))
    sys.orig_argv = script_orig_argv(target, old_orig_argv, len(old_argv))
    global _main_at_shutdown_registered
    if not _main_at_shutdown_registered:   # before the script registers its own: runs after them
        atexit.register(_script_main_at_shutdown)
        _main_at_shutdown_registered = True
    sigterm = _SigtermReports(on_terminate, script_ended)
    with sigterm:
        try:
            if target.module is not None:
                _run_module(target.module, target.args)
            else:
                _run_path(str(target.path), target.args)
        except BaseException as e:  # noqa: BLE001 - the user's exception, reported like python does
            if script_ended is not None:
                script_ended()
            result = _result_of(e, MaxStepsReached)
        else:
            if script_ended is not None:
                script_ended()
            result = RunResult(end=RunEnd.COMPLETED, exit_code=0)
        finally:
            sys.argv[:] = old_argv
            sys.orig_argv = old_orig_argv
            if old_path0 is not None and sys.path:
                sys.path[0] = old_path0
            _SCRIPT_MODULES.append(sys.modules["__main__"])
            sys.modules["__main__"] = old_main
    if sigterm.came_late:   # at the very end, after the script's last bytecode: python would die by it
        return RunResult(end=RunEnd.TERMINATED, exit_code=143, detail="SIGTERM", signal=signal.SIGTERM)
    return result


#: The scripts' ``__main__`` modules, kept for the life of the process, as python keeps its ``__main__``
#: until the interpreter shuts down: the script's globals (a DataLoader with persistent workers, open
#: files, a model) are not garbage when the run ends, so their finalizers run at exit as in a plain run,
#: not during the report. (Freed by the next garbage collection, inside the report, a loader with
#: persistent workers waited 5 s per worker for a shutdown message its queue threads, already freed,
#: never delivered: post-run 12 s instead of 2.)
_SCRIPT_MODULES: list[types.ModuleType] = []
_main_at_shutdown_registered = False


def _script_main_at_shutdown() -> None:
    """At exit, after the script's atexit handlers: the script's module is ``__main__`` again, so the
    interpreter clears it first while every other module is intact, as it does in a plain run."""
    if _SCRIPT_MODULES:
        sys.modules["__main__"] = _SCRIPT_MODULES[-1]


def _result_of(e: BaseException, max_steps: type[BaseException]) -> RunResult:
    """How a script that raised ``e`` ended (its traceback printed as python prints it)."""
    if isinstance(e, max_steps):
        return RunResult(end=RunEnd.MAX_STEPS, exit_code=0, detail=_text(e))
    if isinstance(e, SystemExit):
        return _system_exit(e)
    if isinstance(e, KeyboardInterrupt):
        _print_exception(e)
        return RunResult(end=RunEnd.INTERRUPTED, exit_code=130, detail="KeyboardInterrupt", signal=signal.SIGINT)
    if isinstance(e, Terminated):
        return RunResult(end=RunEnd.TERMINATED, exit_code=143, detail="SIGTERM", signal=signal.SIGTERM)
    _print_exception(e)
    return RunResult(end=RunEnd.EXCEPTION, exit_code=1, detail=f"{type(e).__name__}: {_text(e)}".splitlines()[0][:300])


def _text(e: BaseException) -> str:
    """``str(e)``, or what python prints when that raises."""
    try:
        return str(e)
    except Exception:  # noqa: BLE001 - a broken __str__ is the script's; python prints this instead
        return "<exception str() failed>"


def script_orig_argv(target: Target, orig_argv: list[str], our_argc: int) -> list[str]:
    """``sys.orig_argv`` as python would have it for the script: the interpreter and the options this
    process was started with (``-W``, ``-X``; not ``-m throughput``), then the script (or ``-m module``)
    and its arguments. ``our_argc``: the length of throughput's own ``sys.argv``, the tail of
    ``orig_argv`` python derived it from."""
    if not orig_argv:
        return orig_argv
    options = orig_argv[1:max(1, len(orig_argv) - our_argc)]
    if options and options[-1] == "-m":   # python -m throughput: its module was argv[0]
        options = options[:-1]
    script = ["-m", target.module] if target.module is not None else [str(target.path)]
    return [orig_argv[0], *options, *script, *target.args]


def _bottom_of_the_stack(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with no frame of ours below it where the C helper runs (``_bypass.detached``):
    the script's module frame (or runpy's, for ``-m``) is the bottom of the stack, as in a plain run, for
    ``inspect.stack()``, ``traceback.print_stack``, logging's ``stack_info``, Dynamo's user tracebacks
    and ``warnings``' stacklevel. Our frames are still below it on the C stack."""
    detached = bypass_type("detached")
    return fn(*args, **kwargs) if detached is None else detached(fn, *args, **kwargs)


def _run_path(path: str, args: tuple[str, ...]) -> None:
    p = Path(path)
    file = os.path.join(path, "__main__.py") if p.is_dir() else path
    # As python names its main script: the path as given, made absolute by joining the working folder
    # (no normalisation: `./train.py` stays `/cwd/./train.py`, a link stays the link), while sys.path[0]
    # is the script's real folder (links resolved).
    abs_file = file if os.path.isabs(file) else os.path.join(os.getcwd(), file)
    sys.argv[:] = [path, *args]
    sys.path[0] = os.path.dirname(os.path.realpath(abs_file))
    with io.open_code(abs_file) as f:
        source = f.read()
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=abs_file, __cached__=None, __package__=None, __spec__=None,
                           __builtins__=builtins,
                           __loader__=importlib.machinery.SourceFileLoader("__main__", abs_file))
    if p.is_dir():   # python imports a folder's __main__ from sys.path[0]: a spec, and package ""
        spec = importlib.util.spec_from_file_location("__main__", abs_file)
        if spec is not None:
            module.__dict__.update(__spec__=spec, __package__="", __cached__=spec.cached, __loader__=spec.loader)
    sys.modules["__main__"] = module
    code = compile(source, abs_file, "exec", dont_inherit=True)
    _bottom_of_the_stack(exec, code, module.__dict__)


def _run_module(name: str, args: tuple[str, ...]) -> None:
    """As ``python -m`` does: through runpy's ``_run_module_as_main`` (its two frames are in the
    traceback of an exception, as in python's) in a fresh ``__main__``; argv[0] becomes the file."""
    sys.argv[:] = [name, *args]
    sys.path[0] = os.getcwd()
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    _bottom_of_the_stack(runpy._run_module_as_main, name, alter_argv=True)  # type: ignore[attr-defined]  # python -m's own entry


def _system_exit(e: SystemExit) -> RunResult:
    code = e.code
    if code is None:
        exit_code = 0
    elif isinstance(code, int):
        exit_code = code & 0xFF if code >= 0 else code % 256
    else:
        print(code, file=sys.stderr)  # python prints a non-integer exit code and exits with 1
        exit_code = 1
    return RunResult(end=RunEnd.SYSTEM_EXIT, exit_code=exit_code, detail=f"SystemExit({code!r})")


def _print_exception(e: BaseException) -> None:
    """Print like an uncaught exception (through sys.excepthook), without our frames, and keep it as
    python keeps one: in ``sys.last_type``, ``last_value`` and ``last_traceback`` (and ``last_exc`` on
    3.12+), so the failing frames live until the interpreter shuts down, after the atexit handlers. An
    atexit handler may read them (post-mortem debugging does), and objects they hold (a DataLoader's
    iterator) are finalized at shutdown as in a plain run, not as the exception is dropped: freed early,
    a half-built multi-worker iterator printed 'Exception ignored in ... __del__' and its AttributeError."""
    _trim_chain(e, set())
    sys.last_type, sys.last_value, sys.last_traceback = type(e), e, e.__traceback__
    if sys.version_info >= (3, 12):
        sys.last_exc = e
    sys.excepthook(type(e), e, e.__traceback__)


def _trim_chain(e: BaseException, seen: set[int]) -> None:
    if id(e) in seen:
        return
    seen.add(id(e))
    e.__traceback__ = _trimmed(e.__traceback__)
    for linked in (e.__cause__, e.__context__):
        if linked is not None:
            _trim_chain(linked, seen)


def _trimmed(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The same traceback without our frames: the kept entries are linked to each other (``tb_next`` is
    writable). Not rebuilt with ``types.TracebackType(...)``: an entry's ``tb_lineno`` is None where
    the instruction has no line number (a Ctrl-C landing between lines, Python 3.11+), which that
    constructor refuses, so the script's own KeyboardInterrupt became our TypeError."""
    kept = [t for t in _walk(tb) if not _is_ours(t.tb_frame.f_code.co_filename)]
    for t, after in zip(kept, kept[1:] + [None]):
        t.tb_next = after
    return kept[0] if kept else None


def _walk(tb: types.TracebackType | None) -> Iterator[types.TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _is_ours(filename: str) -> bool:
    return filename.startswith(_HIDDEN_DIRS)


class _SigtermReports:
    """SIGTERM while the script runs (see the module docstring): through ``_sigterm.c`` when it is built
    and ``on_terminate`` is given, else a Python handler that raises ``Terminated`` in the main thread.
    Either only over the default disposition: a handler the script's process already has wins."""

    def __init__(self, on_terminate: Callable[[RunResult], None] | None,
                 script_ended: Callable[[], None] | None) -> None:
        self._on_terminate = on_terminate
        self._script_ended = script_ended
        self._native = False
        self._old: Any = None
        self.came_late = False

    def __enter__(self) -> None:
        try:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                return
            if self._on_terminate is not None and _sigterm is not None and helpers_allowed():
                self._native = _sigterm.install(self._in_main_thread, SIGTERM_GRACE_S)
            if not self._native:
                self._old = signal.signal(signal.SIGTERM, _raise_terminated)
        except ValueError:  # not the main thread: leave signals alone
            self._old = None

    def _in_main_thread(self) -> bool:
        """Run by ``_sigterm.c`` between two bytecodes of the main thread: False to be asked again (a
        recorder mid-update); else the report is written and the process dies by SIGTERM."""
        if _recording(sys._getframe(1)):
            return False
        _sigterm.take_over()
        try:
            if self._script_ended is not None:
                self._script_ended()
            assert self._on_terminate is not None
            self._on_terminate(RunResult(end=RunEnd.TERMINATED, exit_code=143, detail="SIGTERM",
                                         signal=signal.SIGTERM))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)   # the default disposition again (take_over)
        return True

    def __exit__(self, *exc: object) -> None:
        if self._native:
            self.came_late = _sigterm.uninstall()
        elif self._old is not None and signal.getsignal(signal.SIGTERM) is _raise_terminated:
            signal.signal(signal.SIGTERM, self._old)


def _recording(frame: types.FrameType | None) -> bool:
    """Is any frame of this stack in the recording code (``_RECORDING_FILES``)?"""
    while frame is not None:
        if frame.f_code.co_filename in _RECORDING_FILES:
            return True
        frame = frame.f_back
    return False


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def prepare_exit_by_signal() -> None:
    """Register (before the script registers its own) the atexit handler that ``exit_by_signal``
    arms, so it runs after the script's atexit handlers, as python's own signal exit does."""
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_die_by_pending_signal)
        _atexit_registered = True


def exit_by_signal(signum: int) -> None:
    """End this process by ``signum`` at interpreter exit, so the parent sees the same status as
    with plain python (-2 for Ctrl-C, -15 for SIGTERM)."""
    global _pending_signal
    _pending_signal = signum


def _die_by_pending_signal() -> None:
    if _pending_signal is None:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    signal.signal(_pending_signal, signal.SIG_DFL)
    os.kill(os.getpid(), _pending_signal)


def _has_python_shebang(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first
