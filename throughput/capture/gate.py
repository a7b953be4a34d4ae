"""Whether the zero-code hooks record: only while installed, and only in the thread running the script."""

from __future__ import annotations

import threading

_get_ident = threading.get_ident


class Gate:
    """``open`` and ``thread`` are read on every hooked call (plain attribute reads are the cheapest
    check there is); only ``Instrumentation`` changes them, through ``start``/``close``."""

    __slots__ = ("open", "thread")

    def __init__(self) -> None:
        self.open = False
        self.thread = _get_ident()

    def start(self) -> None:
        """Record from now on, in the calling thread."""
        self.thread = _get_ident()
        self.open = True

    def close(self) -> None:
        """Record nothing more (removal, ``--max-steps`` reached, a forked DataLoader worker)."""
        self.open = False

    def allows(self) -> bool:
        """True in the thread (and process) that runs the script, while open."""
        return self.open and _get_ident() == self.thread
