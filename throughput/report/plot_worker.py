"""A report's plots, drawn in another process while this one writes the other files.

matplotlib's import (0.6-1.2 s on a 2-core VM) and the drawing (~0.4 s) were most of the post-run work,
and they need nothing the JSON files need: with a second core free, ``PlotProcess`` hands the bounded
series (a few thousand kept steps whatever the run's length) to another process and collects the file
names at the end, so the post-run time is the longer of the two instead of their sum. That process is
the plot server started with the run (``plot_server``: its imports are done by then) when there is one,
else ``python -m throughput.report.plot_worker`` started now. With one usable core, or when neither can
run, the same plots are drawn in this process (``plot_job.draw``). Both run in a session of their own, so
a Ctrl-C on the terminal reaches only this process, which decides (``throughput.cli.interrupts``) and
kills the drawing when the report is aborted.

Protocol of the child started here: the parent writes one pickled ``PlotJob`` to its stdin and closes it;
the child prints one JSON line, ``{"files": [...]}`` or ``{"missing": "why"}`` (matplotlib absent), and
exits 0.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import replace

from throughput.report import plot_server
from throughput.report.plot_job import (PlotJob, PlotResult, child_env, draw, draws_elsewhere, parse_reply,
                                        remove_partial_images, reply_line)
from throughput.report.plot_server import PlotServer

CHILD_TIMEOUT_S = 120.0   # a child that draws longer than this is killed; the report says the plots are missing


class PlotProcess:
    """``start`` the drawing now, ``finish`` later: in the plot server started with the run
    (``plot_server``) when there is one, else in a child started now; drawn here when neither can run."""

    def __init__(self, job: PlotJob) -> None:
        self.job = job
        self._child: subprocess.Popen[bytes] | None = None
        self._server: PlotServer | None = None   # the server started with the run, drawing this job

    def start(self) -> "PlotProcess":
        if not draws_elsewhere():
            return self
        server = plot_server.take()
        if server is not None and server.submit(self.job):
            self._server = server
            return self
        try:
            self._child = subprocess.Popen([sys.executable, "-m", "throughput.report.plot_worker"],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, env=child_env(), start_new_session=True)
            assert self._child.stdin is not None
            self._child.stdin.write(pickle.dumps(self.job, protocol=pickle.HIGHEST_PROTOCOL))
            self._child.stdin.close()
            self._child.stdin = None   # sent whole; communicate() must not flush it again
        except OSError:   # cannot start a process here (limits, a sandbox): draw in this process
            self.kill()
        return self

    def finish(self) -> PlotResult:
        """Wait for the child and return what it drew (or draw here if it never started)."""
        server = self._server
        if server is not None:
            return self._finish_in(server)
        child = self._child
        if child is None:
            return draw(self.job)
        try:
            out, _ = child.communicate(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return _timed_out()
        finally:
            self._child = None
        reply = parse_reply(child.returncode, out)
        # A child that could not run (an interpreter that is not Python, a broken environment): drawn
        # here instead, as without a second core; at worst as slow as before, never fewer plots.
        return reply if reply is not None else draw(self.job)

    def _finish_in(self, server: PlotServer) -> PlotResult:
        try:   # still ``self._server`` while waiting: a second Ctrl-C here must find it to kill it
            reply = server.reply(CHILD_TIMEOUT_S)
        except TimeoutError:
            self.kill()
            return _timed_out()
        self._server = None
        if reply is None:   # the server died (OOM-killed, a broken environment): drawn here
            return draw(self.job)
        # the server drew into the absolute folder; the files as this process names them
        return replace(reply, files=tuple(self.job.out / f.name for f in reply.files))

    def kill(self) -> None:
        """Stop the drawing (a report aborted by a second Ctrl-C) and remove the image it was writing."""
        server, self._server = self._server, None
        if server is not None:
            server.kill()
        child, self._child = self._child, None
        if child is not None:
            child.kill()
            child.wait()
            remove_partial_images(self.job.out, child.pid)


def _timed_out() -> PlotResult:
    return PlotResult(files=(), missing=f"the plot process took over {CHILD_TIMEOUT_S:.0f} s and was stopped")


def main() -> int:
    job = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(reply_line(draw(job)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    # os._exit: the reply is flushed and nothing else needs finalizing; skips matplotlib's teardown (~0.1 s)
    os._exit(main())
