"""Hot functions measured by py-spy, as the analysis reads them from a session's ``pyspy_hot`` events
(reduced from the speedscope profile at capture by ``telemetry/speedscope.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class HotFunction:
    """A function's own time (samples where it was the innermost Python frame)."""

    role: str            # "main" or "worker"
    function: str
    file: str
    line: int            # the line most samples were on
    own_s: float
    share: float         # of all sampled time of this role, 0..1
    processes: int       # how many processes of this role it was seen in
