"""Ctrl-C around work that should finish once started (the report after a run).

The first Ctrl-C is announced ("finishing the report; press Ctrl-C again to abort") and ignored; the
second raises KeyboardInterrupt where the work is, so the caller can stop cleanly and say what it
kept. The announcement is written with ``os.write``: a signal handler that printed through
``sys.stderr`` could interrupt another write to the same buffered stream and fail with a reentrancy
error. Outside the main thread (signals cannot be handled there) nothing changes.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any


class FinishFirst:
    """``with FinishFirst(what="the report") as guard:`` -- see the module docstring."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.interrupted = False
        self._old: Any = None
        self._installed = False

    def __enter__(self) -> "FinishFirst":
        self.arm()
        return self

    def arm(self) -> None:
        """From now on Ctrl-C is announced, then aborts (idempotent; ``disarm`` or leaving the ``with``
        puts the previous handler back)."""
        if not self._installed and threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
            self._installed = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        try:
            os.write(2, f"\nthroughput: finishing {self.what}; press Ctrl-C again to abort\n".encode())
        except OSError:
            pass

    def __exit__(self, *exc: object) -> None:
        self.disarm()

    def disarm(self) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old)
            self._installed = False
