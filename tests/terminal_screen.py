"""A small terminal screen for tests: what a VT100/xterm terminal shows after a byte stream.

It understands what the progress line and ordinary program output use: printable text (clipped at the
right edge), CR, LF (which scrolls inside the scroll region when the cursor is on its bottom row),
ESC 7 / ESC 8 (save / restore the cursor), ESC D (index), CSI n A (up), CSI r;c H (move), CSI t;b r
(scroll region; CSI r resets it; both home the cursor), CSI K / CSI 2K (erase to end of line / the
line). Anything else fails the test, so a sequence the line starts to use must be modelled here first.
"""

from __future__ import annotations

import re

_CSI = re.compile(r"\x1b\[([0-9;]*)([A-Za-z])")


class Screen:
    def __init__(self, rows: int, columns: int) -> None:
        self.rows, self.columns = rows, columns
        self.lines = [[" "] * columns for _ in range(rows)]
        self.row = self.column = 0          # 0-based cursor
        self.top, self.bottom = 0, rows - 1  # scroll region, inclusive, 0-based
        self.saved = (0, 0)
        self.scrolled_off: list[str] = []    # lines that scrolled off the top of the screen

    def text(self, row: int) -> str:
        """Row ``row`` (0-based; -1 the last) without trailing blanks."""
        return "".join(self.lines[row]).rstrip()

    def visible(self) -> list[str]:
        return [self.text(r) for r in range(self.rows)]

    def feed(self, data: str) -> None:
        i = 0
        while i < len(data):
            ch = data[i]
            if ch == "\x1b":
                i = self._escape(data, i)
                continue
            if ch == "\r":
                self.column = 0
            elif ch == "\n":
                self._line_feed()
            elif ch >= " ":
                if self.column >= self.columns:   # autowrap, deferred as xterm's: a character written
                    self._line_feed()             # past the last column goes to the next row's start
                    self.column = 0
                self.lines[self.row][self.column] = ch
                self.column += 1
            else:
                raise AssertionError(f"unmodelled control character {ch!r}")
            i += 1

    def _line_feed(self) -> None:
        if self.row == self.bottom:
            scrolled = self.lines.pop(self.top)
            if self.top == 0:
                self.scrolled_off.append("".join(scrolled).rstrip())
            self.lines.insert(self.bottom, [" "] * self.columns)
        elif self.row < self.rows - 1:
            self.row += 1

    def _escape(self, data: str, i: int) -> int:
        nxt = data[i + 1:i + 2]
        if nxt == "7":
            self.saved = (self.row, self.column)
            return i + 2
        if nxt == "8":
            self.row, self.column = self.saved
            return i + 2
        if nxt == "D":
            self._line_feed()
            return i + 2
        m = _CSI.match(data, i)
        if m is None:
            raise AssertionError(f"unmodelled escape sequence {data[i:i + 8]!r}")
        args = [int(a) for a in m.group(1).split(";") if a] if m.group(1) else []
        final = m.group(2)
        if final == "A":
            n = args[0] if args else 1
            floor = self.top if self.row >= self.top else 0
            self.row = max(floor, self.row - n)
        elif final == "H":
            row, column = (args + [1, 1])[:2] if args else (1, 1)
            self.row, self.column = min(row, self.rows) - 1, min(column, self.columns) - 1
        elif final == "r":
            top, bottom = (args[0], args[1]) if len(args) == 2 else (1, self.rows)
            self.top, self.bottom = top - 1, bottom - 1
            self.row = self.column = 0
        elif final == "K":
            mode = args[0] if args else 0
            start = 0 if mode == 2 else self.column
            for c in range(start, self.columns):
                self.lines[self.row][c] = " "
        else:
            raise AssertionError(f"unmodelled escape sequence {m.group(0)!r}")
        return m.end()
