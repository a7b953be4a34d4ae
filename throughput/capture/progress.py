"""The live progress line: one status line on stderr, redrawn at most once a second.

In the habits of tqdm: shown when stderr is a terminal, off when it is not (a pipe, a file, CI) or
with ``--quiet``, forced with ``--progress``. It costs the step path nothing: a daemon thread wakes
once a second and reads the recorder's ring of recent steps (which the training thread fills at its
drains, at least once a second of steps) under the drain lock; the training thread never waits for it
beyond that lock. A hand-written line: tqdm would need a callback per step (its ``update``) and is not
a dependency; this needs neither.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TextIO

from throughput.session.records import exclusive_times

INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressView:
    """What the line shows: steps so far and the recent steps' (durations, phases, counts)."""

    steps_done: int
    recent: Sequence[tuple[Any, ...]]       # recorder StepTuples, oldest first


def progress_enabled(setting: bool | None, stream: TextIO) -> bool:
    """``setting`` when given (--progress / --quiet), else whether ``stream`` is a terminal."""
    if setting is not None:
        return setting
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def status_line(view: ProgressView) -> str:
    """e.g. ``throughput: step 12,345 | 2.41 ms/step | 26.5k tokens/s | backward 48%`` (pure)."""
    parts = [f"throughput: step {view.steps_done:,}"]
    recent = view.recent
    if recent:
        durations = sorted(s[2] - s[1] for s in recent)
        parts.append(f"{_seconds(durations[len(durations) // 2])}/step")
        wall = sum(durations)
        tokens = [s[5][1] for s in recent]
        samples = [s[5][0] for s in recent]
        if wall > 0 and all(t is not None for t in tokens):
            parts.append(f"{_count(sum(tokens) / wall)} tokens/s")
        elif wall > 0 and all(n is not None for n in samples):
            parts.append(f"{_count(sum(samples) / wall)} samples/s")
        phases: dict[str, float] = {}
        for s in recent:
            for name, seconds in exclusive_times(s[2] - s[1], dict(zip(s[3], s[4]))).items():
                phases[name] = phases.get(name, 0.0) + seconds
        if phases and wall > 0:
            name, seconds = max(phases.items(), key=lambda kv: kv[1])
            parts.append(f"{name} {seconds / wall:.0%}")
    return " | ".join(parts)


class ProgressLine:
    """Redraws ``status_line(read())`` on ``stream`` every ``interval_s`` from a daemon thread."""

    def __init__(self, read: Callable[[], ProgressView], stream: TextIO | None = None,
                 interval_s: float = INTERVAL_S) -> None:
        self._read = read
        self._stream = stream if stream is not None else sys.stderr
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="throughput-progress", daemon=True)
        self._drawn = False

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._draw()

    def _draw(self, end: str = "") -> None:
        try:
            line = status_line(self._read())
            self._stream.write("\r" + line + "\x1b[K" + end)
            self._stream.flush()
            self._drawn = True
        except Exception:   # a closed or broken stderr, or a bug here: never break the run, stop drawing
            self._stop.set()

    def stop(self) -> None:
        """Stop the thread and leave the final line (with a newline) if one was drawn."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2 * self._interval_s)
        if self._drawn:
            self._draw(end="\n")


def _seconds(s: float) -> str:
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.0f} us"


def _count(x: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.1f}"
