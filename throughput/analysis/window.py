"""The view window of a session (operators or a memory snapshot): which steps it covered and which it
left out of the figures because the view slowed them. Pure: reads the ``window`` event the capture wrote
(``capture/window.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from throughput.session.session import Session

__all__ = ["Window", "window_of"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """Steps ``first_step..last_step`` were recorded; ``excluded_first..excluded_last`` (the profiler's
    warm-up step, the window, and the step that paid for stopping it) are left out of the figures."""

    first_step: int
    last_step: int
    excluded_first: int
    excluded_last: int
    wall_s: float              # total wall time of the recorded steps
    ops: bool
    memory_snapshot: bool

    @property
    def steps(self) -> int:
        return self.last_step - self.first_step + 1

    def excludes(self, index: int) -> bool:
        return self.excluded_first <= index <= self.excluded_last


def window_of(session: Session) -> Window | None:
    """The view window that slowed its steps (operators or a memory snapshot), if the run had one."""
    event = next((e for e in session.events if e.kind == "window"), None)
    if event is None:
        return None
    d = event.detail
    return Window(first_step=int(d["first_step"]), last_step=int(d["last_step"]),
                  excluded_first=int(d["excluded_first"]), excluded_last=int(d["excluded_last"]),
                  wall_s=float(d["window_wall_s"]), ops=bool(d.get("ops", False)),
                  memory_snapshot=bool(d.get("memory_snapshot", False)))
