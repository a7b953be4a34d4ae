"""Where the live progress line is drawn (throughput/capture/progress.py): on a real pseudo-terminal of
a known size it keeps the bottom row to itself and the script's own output scrolls above it, intact;
what the terminal shows is worked out by tests/terminal_screen.py from the bytes that reached it."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import termios
import time
from typing import Iterator

import pytest

from tests.terminal_screen import Screen
from throughput.capture.progress import (BottomRow, ProgressLine, ProgressView, SameLine, display_for,
                                         progress_enabled)

ROWS, COLUMNS = 6, 40


class Terminal:
    """A pseudo-terminal of ROWS x COLUMNS: ``out`` writes to it as a program does (a text stream on the
    terminal side), ``screen`` shows what it displays after everything written so far."""

    def __init__(self, rows: int = ROWS, columns: int = COLUMNS) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.out = os.fdopen(slave, "w", buffering=1)
        os.set_blocking(self.master, False)
        self.screen = Screen(rows, columns)

    def read(self) -> Screen:
        while True:
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                return self.screen
            self.screen.feed(data.decode())

    def close(self) -> None:
        self.out.close()
        os.close(self.master)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Terminal]:
    monkeypatch.setenv("TERM", "xterm-256color")
    t = Terminal()
    yield t
    t.close()


def _wait_for_status(terminal: Terminal) -> None:
    """Until the line's thread has drawn (no timing asserted: the deadline only turns a hang into a failure)."""
    deadline = time.monotonic() + 120
    while "throughput: step" not in terminal.read().text(-1):
        assert time.monotonic() < deadline, "the progress thread never drew"
        time.sleep(0.005)


def test_a_terminal_of_known_size_gets_the_bottom_row_display(terminal: Terminal,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(display_for(terminal.out), BottomRow)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(display_for(terminal.out), SameLine)
    assert isinstance(display_for(io.StringIO()), SameLine)                 # forced onto a non-terminal


def test_a_terminal_without_a_size_gets_the_same_line_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    master, slave = pty.openpty()          # a new pty reports 0 x 0
    with os.fdopen(slave, "w") as out:
        assert isinstance(display_for(out), SameLine)
    os.close(master)


def test_the_scripts_lines_scroll_above_the_line_intact(terminal: Terminal) -> None:
    display = display_for(terminal.out)
    terminal.out.write("before\n")
    display.show("throughput: step 1")
    screen = terminal.read()
    assert screen.text(-1) == "throughput: step 1" and screen.text(0) == "before"
    for k in range(10):                     # more lines than the region holds: they scroll inside it
        terminal.out.write(f"script line {k}\n")
        display.show(f"throughput: step {k + 2}")
    terminal.out.write("partial ")        # a line the script has not finished ...
    terminal.out.flush()
    display.show("throughput: step 12")
    terminal.out.write("rest\n")            # ... continues where it was
    screen = terminal.read()
    # 5 rows of region: the last 3 script lines, the finished partial one, the cursor's empty row
    assert screen.visible() == ["script line 7", "script line 8", "script line 9", "partial rest", "",
                                "throughput: step 12"]
    assert screen.scrolled_off == ["before"] + [f"script line {k}" for k in range(7)]
    display.close("throughput: step 12 (final)")
    terminal.out.write("after\n")
    screen = terminal.read()
    assert (screen.top, screen.bottom) == (0, ROWS - 1)                     # the region is reset
    # The final status is a line of its own after the script's; the bottom row was cleared, then
    # the screen scrolled as a full one again.
    assert screen.visible() == ["script line 8", "script line 9", "partial rest",
                                "throughput: step 12 (final)", "after", ""]


def test_the_final_line_never_covers_a_last_line_left_without_its_newline(terminal: Terminal) -> None:
    """A script whose last print had ``end=""``: its text stays, and the final status goes below it."""
    display = display_for(terminal.out)
    display.show("throughput: step 1")
    terminal.out.write("done, no newline")
    terminal.out.flush()
    display.close("throughput: step 1 (final)")
    screen = terminal.read()
    assert screen.visible()[:3] == ["done, no newline", "throughput: step 1 (final)", ""]


def test_a_cursor_on_the_bottom_row_is_moved_up_into_the_region_first(terminal: Terminal) -> None:
    for k in range(ROWS + 2):              # a full screen: the cursor sits on the last row
        terminal.out.write(f"old {k}\n")
    assert terminal.read().row == ROWS - 1
    display = display_for(terminal.out)
    display.show("throughput: step 1")
    terminal.out.write("new\n")
    screen = terminal.read()
    assert screen.visible() == ["old 5", "old 6", "old 7", "new", "", "throughput: step 1"]
    display.close(None)


def test_the_line_never_wraps_and_follows_a_resize(terminal: Terminal) -> None:
    display = display_for(terminal.out)
    display.show("x" * 100)
    assert terminal.read().text(-1) == "x" * (COLUMNS - 1)
    fcntl.ioctl(terminal.out.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", ROWS + 2, COLUMNS, 0, 0))
    terminal.screen = Screen(ROWS + 2, COLUMNS)                             # the emulator of the new size
    display.show("throughput: step 2")
    screen = terminal.read()
    assert screen.bottom == ROWS and screen.text(-1) == "throughput: step 2"   # region 1..rows-1 again


def test_the_progress_line_thread_draws_and_stops_on_the_bottom_row(terminal: Terminal) -> None:
    views = iter(range(1, 1000))

    def read() -> ProgressView:
        return ProgressView(steps_done=next(views), recent=())

    line = ProgressLine(read, stream=terminal.out, interval_s=0.01)
    line.start()
    _wait_for_status(terminal)
    line.stop()
    line.stop()                                                   # idempotent
    screen = terminal.read()
    assert (screen.top, screen.bottom) == (0, ROWS - 1) and screen.text(-1) == ""
    assert any(text.startswith("throughput: step ") for text in screen.visible())   # the final line


def test_a_forked_child_that_stops_the_line_leaves_the_terminal_alone(terminal: Terminal) -> None:
    line = ProgressLine(lambda: ProgressView(steps_done=1, recent=()), stream=terminal.out, interval_s=0.01)
    line.start()
    _wait_for_status(terminal)
    pid = os.fork()
    if pid == 0:                            # as a script's child that exits through atexit would
        line.stop()
        os._exit(0)
    os.waitpid(pid, 0)
    screen = terminal.read()
    assert screen.bottom == ROWS - 2 and screen.text(-1) == "throughput: step 1"   # still ours
    line.stop()
    assert terminal.read().bottom == ROWS - 1


def test_only_rank_0_shows_the_line_unless_forced(terminal: Terminal) -> None:
    assert progress_enabled(None, terminal.out, rank=0)
    assert not progress_enabled(None, terminal.out, rank=1)
    assert progress_enabled(True, terminal.out, rank=1)
    assert not progress_enabled(False, terminal.out, rank=0)
    assert not progress_enabled(None, io.StringIO(), rank=0)


def test_a_second_line_in_the_same_process_does_not_draw(terminal: Terminal) -> None:
    """A script's own Profiler under `throughput profile`: the first line keeps the terminal."""
    first = ProgressLine(lambda: ProgressView(steps_done=1, recent=()), stream=terminal.out, interval_s=0.01)
    second = ProgressLine(lambda: ProgressView(steps_done=99, recent=()), stream=terminal.out, interval_s=0.01)
    first.start()
    second.start()
    _wait_for_status(terminal)
    second.stop()
    assert terminal.read().bottom == ROWS - 2                              # the first one's region stays
    first.stop()
    assert "step 99" not in "\n".join(terminal.read().scrolled_off + terminal.read().visible())
    third = ProgressLine(lambda: ProgressView(steps_done=3, recent=()), stream=terminal.out, interval_s=0.01)
    third.start()                                                          # after the first stopped: draws
    _wait_for_status(terminal)
    third.stop()


def test_a_pipe_or_file_gets_no_escape_codes() -> None:
    out = io.StringIO()
    display = display_for(out)                      # --progress into a log file
    display.show("throughput: step 10 | 1.5 ms/step")
    display.show("throughput: step 9")             # shorter: 15 spaces cover what is left of the first
    display.close("throughput: done")
    assert out.getvalue() == ("\rthroughput: step 10 | 1.5 ms/step"
                              "\rthroughput: step 9" + " " * 15
                              + "\rthroughput: done" + " " * 2 + "\n")
    assert "\x1b" not in out.getvalue()
