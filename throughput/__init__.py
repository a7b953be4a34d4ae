"""throughput: where each PyTorch training step's time goes, and a tuned recipe that runs faster.

Embedded use::

    prof = throughput.Profiler()
    for batch in prof.iter(loader):
        with prof.phase("forward"): loss = model(batch)
        with prof.phase("backward"): loss.backward()
        with prof.phase("optimizer"): opt.step(); opt.zero_grad()
        prof.step()
    session = prof.stop()                      # ends the run (or use `with throughput.profile() as prof:`)
    print(throughput.summarize(session).verdict.headline)
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from throughput.capture.profiler import Profiler, active_profiler, phase
    from throughput.capture.recorder import PhaseMisuseError
    from throughput.session import Phase, Session, load_session

__version__ = "0.1.0"

# The public names load on first use, so that `throughput`'s command line starts (and takes Ctrl-C
# cleanly) before numpy and the capture code are imported.
_LAZY = {"Profiler": "throughput.capture.profiler", "active_profiler": "throughput.capture.profiler",
         "phase": "throughput.capture.profiler", "PhaseMisuseError": "throughput.capture.recorder",
         "Phase": "throughput.session", "Session": "throughput.session", "load_session": "throughput.session"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'throughput' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


@contextlib.contextmanager
def profile(out: str | Path | None = None, *, print_report: bool = True, **kwargs: Any) -> Iterator[Profiler]:
    """Profile the block; on exit (also on an exception) write a report folder to ``out`` if given and
    print the summary table to stderr unless ``print_report=False``. Keyword arguments go to Profiler.
    ``out`` is checked before the block runs (``folders.check_report_folder``: an existing file,
    a folder holding another run's report or an unwritable path raise there, not after the run)."""
    from throughput.capture.profiler import Profiler
    if out is not None:
        from throughput.folders import check_report_folder
        check_report_folder(out)
    prof = Profiler(**kwargs)
    prof.start()
    if out is not None:
        from throughput.report import plot_server
        plot_server.prestart()   # matplotlib imports while the block runs (report/plot_server.py)
    exc_info: BaseException | None = None
    try:
        yield prof
    except BaseException as e:
        exc_info = e
        raise
    finally:
        from throughput.capture.profiler import _run_end_from_exception
        session = prof.stop(*_run_end_from_exception(exc_info))
        from throughput.analysis.summary import summarize
        summary = summarize(session)
        if out is not None:
            from throughput.report.folder import write_report
            try:
                write_report(session, out, summary)
            finally:
                plot_server.discard()   # not taken: no steps to plot
        if print_report:
            from throughput.report.console import render_table
            print(render_table(summary), file=sys.stderr, end="")


def summarize(run: "Profiler | Session") -> Any:
    """The analysed ``Summary`` (``throughput.analysis.summary.Summary``) of a session, or of a
    profiler's session so far (a profiler still running gives a summary of a run marked running)."""
    from throughput.analysis.summary import summarize as _summarize
    from throughput.capture.profiler import Profiler   # not the lazy global: a function's global lookup
    #                                                    never reaches the module's __getattr__
    return _summarize(run.session() if isinstance(run, Profiler) else run)


def train(recipe: Any, **kwargs: Any) -> Any:
    """Run the tuned training loop on a recipe (file path or object); see ``throughput.loop.train`` and
    docs/training.md. Returns a ``TrainResult``."""
    from throughput.loop import train as _train
    return _train(recipe, **kwargs)


__all__ = ["Phase", "PhaseMisuseError", "Profiler", "Session", "active_profiler", "load_session", "phase",
           "profile", "summarize", "train", "__version__"]
