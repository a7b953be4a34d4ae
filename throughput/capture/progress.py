"""The live progress line: one status line on stderr, redrawn at most once a second.

In the habits of tqdm: shown when stderr is a terminal, off when it is not (a pipe, a file, CI) or
with ``--quiet``, forced with ``--progress``; under several ranks only rank 0 shows it unless forced
(one line per rank on one terminal would overwrite each other). It costs the step path nothing: a daemon
thread wakes once a second and reads the recorder's ring of recent steps (which the training thread
fills at its drains, at least once a second of steps) under the drain lock; the training thread never
waits for it beyond that lock. A hand-written line: tqdm would need a callback per step (its
``update``) and is not a dependency; this needs neither.

Where it is drawn. The script writes to the same terminal (its prints, its logging, its own tqdm bars),
and a line redrawn with ``\r`` in the middle of that output glues itself to the script's next line.
On a terminal whose size is known the line therefore gets the bottom row to itself (``BottomRow``):
the rows above it become the scroll region (DECSTBM), where the script's output scrolls as before,
and each draw saves the cursor, writes the bottom row and restores the cursor, in one ``write`` to the
terminal, so the script's output continues exactly where it was. The region is reset and the row
cleared when the line stops (also at interpreter exit, for an embedded profiler never stopped). What
cannot be undone: a process killed outright (SIGKILL, the OOM killer) or suspended (Ctrl-Z) leaves
the region set until the terminal is reset (``reset``, or ``tput csr 0 $(($(tput lines) - 1))``).
Elsewhere (a pipe or file with ``--progress``, ``TERM=dumb``, a terminal that reports no size) the
line is redrawn in place with ``\r`` (``SameLine``), as tqdm does; into a pipe, a file or a dumb
terminal without escape codes (spaces erase what the previous line left).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, TextIO

from throughput.session.records import exclusive_times

INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressView:
    """What the line shows: steps so far and the recent steps' (durations, phases, counts)."""

    steps_done: int
    recent: Sequence[tuple[Any, ...]]       # recorder StepTuples, oldest first


def progress_enabled(setting: bool | None, stream: TextIO, rank: int = 0) -> bool:
    """``setting`` when given (--progress / --quiet), else whether ``stream`` is a terminal and this
    is rank 0 (the other ranks of a ``torchrun`` share rank 0's terminal)."""
    if setting is not None:
        return setting
    return rank == 0 and _is_terminal(stream)


def _is_terminal(stream: TextIO) -> bool:
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
        # real tokens (less the padding the batches told), as the report's tokens/s
        tokens: list[int | None] = [None if s[5][1] is None else s[5][1] - (s[5][2] or 0) for s in recent]
        samples = [s[5][0] for s in recent]
        if wall > 0 and all(t is not None for t in tokens):
            parts.append(f"{_count(sum(t or 0 for t in tokens) / wall)} tokens/s")
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


class Display(Protocol):
    """Where the line goes: ``show`` draws a new text over the previous one; ``close`` takes the line
    away and leaves ``final`` (if given) as a line of its own."""

    def show(self, text: str) -> None: ...

    def close(self, final: str | None) -> None: ...


class SameLine:
    """The line redrawn in place: ``\r``, the text, the rest of the previous text erased. ``escapes``:
    erase with an escape sequence (a terminal); else with spaces over the previous text's length, as
    tqdm does, so that a pipe or a file (``--progress`` into a log, ``TERM=dumb``) holds no escape codes."""

    def __init__(self, stream: TextIO, escapes: bool = True) -> None:
        self._stream, self._escapes, self._shown = stream, escapes, 0

    def show(self, text: str) -> None:
        self._stream.write(self._over(text))
        self._stream.flush()

    def close(self, final: str | None) -> None:
        if final is not None:
            self._stream.write(self._over(final) + "\n")
            self._stream.flush()

    def _over(self, text: str) -> str:
        if self._escapes:
            return _in_place(text)
        pad, self._shown = max(0, self._shown - len(text)), len(text)
        return "\r" + text + " " * pad


# Escape sequences (VT100/xterm; every terminal emulator in use has them): save and restore the cursor
# (with its attributes), reset the scroll region (setting one also homes the cursor: hence always inside
# save/restore), erase the line, index (down one row, scrolling at the region's bottom: unlike "\n",
# it keeps the column), cursor up one row.
SAVE, RESTORE, RESET_REGION, ERASE_LINE, INDEX, UP = "\x1b7", "\x1b8", "\x1b[r", "\x1b[2K", "\x1bD", "\x1b[1A"
ERASE_TO_END = "\x1b[K"
MIN_ROWS, MIN_COLUMNS = 4, 20


def _in_place(text: str) -> str:
    """``text`` over the current line: back to its start, the text, the rest of the old line erased."""
    return "\r" + text + ERASE_TO_END


def _region(rows: int) -> str:
    return f"\x1b[1;{rows - 1}r"


def _row(row: int) -> str:
    return f"\x1b[{row};1H"


class BottomRow:
    """The line on the terminal's last row, the rows above it the scroll region (module docstring).
    Everything goes straight to the terminal's file descriptor, one ``os.write`` per draw.

    ``size`` returns (columns, rows); it is read at every draw, so a resized terminal gets its region
    set again for its new height."""

    def __init__(self, fd: int, size: Callable[[], tuple[int, int]]) -> None:
        self._fd = fd
        self._size = size
        self._rows = 0          # the height the region was set for (0: not set)

    def show(self, text: str) -> None:
        columns, rows = self._size()
        out = ""
        if rows != self._rows:
            # Make room at the bottom if the cursor is there (index scrolls the screen up one row when
            # it is on the last row), reserve the last row, and put the cursor back on its own row.
            out += INDEX + SAVE + _region(rows) + RESTORE + UP
            self._rows = rows
        # One row, never wrapping: a wrap on the last row would scroll the whole screen.
        out += SAVE + _row(rows) + text[:columns - 1] + ERASE_TO_END + RESTORE
        self._write(out)

    def close(self, final: str | None) -> None:
        if self._rows:
            self._write(SAVE + RESET_REGION + RESTORE + SAVE + _row(self._rows) + ERASE_LINE + RESTORE)
            self._rows = 0
        if final is not None:
            # The final line goes on a line of its own, never over a script's last line left without its
            # newline: a row's width of spaces then a carriage return leaves the cursor at the start of
            # this row when it was at its start (the spaces end in the terminal's deferred wrap) and at
            # the start of the next row otherwise (they wrap), as zsh does before its prompt.
            columns, _ = self._size()
            self._write(" " * columns + _in_place(final) + "\n")

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self._fd, data):]


def display_for(stream: TextIO) -> Display:
    """``BottomRow`` on a terminal of known size that understands escape sequences, else ``SameLine``."""
    if not _is_terminal(stream) or os.environ.get("TERM", "") in ("", "dumb"):
        return SameLine(stream, escapes=False)
    try:
        fd = stream.fileno()
    except (AttributeError, ValueError):
        return SameLine(stream)
    first = _usable_size(fd)
    if first is None:
        return SameLine(stream)
    last = first

    def size() -> tuple[int, int]:   # the last usable size while the terminal reports none
        nonlocal last
        last = _usable_size(fd) or last
        return last

    return BottomRow(fd, size)


def _usable_size(fd: int) -> tuple[int, int] | None:
    """(columns, rows) of the terminal on ``fd``; None when it reports none, or one too small to keep a row."""
    try:
        columns, rows = os.get_terminal_size(fd)
    except OSError:
        return None
    return (columns, rows) if rows >= MIN_ROWS and columns >= MIN_COLUMNS else None


_drawing: "weakref.ref[ProgressLine] | None" = None   # the line that draws in this process, if any
_start_lock = threading.Lock()


class ProgressLine:
    """Redraws ``status_line(read())`` on ``stream`` every ``interval_s`` from a daemon thread."""

    def __init__(self, read: Callable[[], ProgressView], stream: TextIO | None = None,
                 interval_s: float = INTERVAL_S, display: Display | None = None) -> None:
        self._read = read
        self._stream = stream if stream is not None else sys.stderr
        self._display = display
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="throughput-progress", daemon=True)
        self._drawn = False
        self._lock = threading.Lock()   # a draw and the final close never overlap
        self._closed = False
        self._pid = os.getpid()         # a forked child that exits through atexit leaves the line alone

    def start(self) -> None:
        """Start drawing, unless another line already draws in this process (a script's own Profiler
        under ``throughput profile``): one line per terminal, the first one's."""
        global _drawing
        with _start_lock:
            if _drawing is not None and _drawing() is not None:
                self._closed = True
                return
            _drawing = weakref.ref(self)
        if self._display is None:
            self._display = display_for(self._stream)
        atexit.register(self.stop)   # an embedded profiler never stopped still gives the terminal back
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._draw()

    def _draw(self) -> None:
        with self._lock:
            if self._closed or self._display is None:
                return
            try:
                self._display.show(status_line(self._read()))
                self._drawn = True
            except Exception:   # a closed or broken stderr, or a bug here: never break the run, stop drawing
                self._stop.set()

    def stop(self) -> None:
        """Stop the thread, take the line away and leave the final status as a line of its own (if a
        line was drawn). Idempotent; does nothing in a forked child."""
        global _drawing
        self._stop.set()
        if os.getpid() != self._pid:
            return
        with _start_lock:
            if _drawing is not None and _drawing() is self:
                _drawing = None
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2 * self._interval_s)
        atexit.unregister(self.stop)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._display is None or not self._drawn:
                return
            try:
                self._stream.flush()   # the script's buffered text first: the final line comes after it
                self._display.close(status_line(self._read()))
            except Exception:   # as in _draw: the run's outcome never depends on the line
                pass


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
