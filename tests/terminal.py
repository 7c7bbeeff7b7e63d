"""A process on a real pseudo-terminal, for the tests of what hog draws there: its
output is read as it comes, keys can be typed, Ctrl-C is SIGINT to its group, the
window can be resized; ``Screen`` replays what was drawn as a terminal would show it."""
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from .harness import hog_argv, hog_env, track

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


class Terminal:
    def __init__(self, cwd, *args, rows: int = 40, cols: int = 120, env=None):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = hog_env({"TERM": "xterm-256color", "COLUMNS": None, "LINES": None,
                       **(env or {})})
        self.started = time.monotonic()
        self.proc = track(subprocess.Popen(hog_argv(*args), cwd=str(cwd), env=env, stdin=slave,
                                           stdout=slave, stderr=slave, start_new_session=True,
                                           close_fds=True))
        os.close(slave)
        self.chunks = []
        self.resizes = []           # (bytes read before it, rows, cols)
        self.size = self.first_size = (rows, cols)
        self.ended_at = None

    @property
    def raw(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw)

    def pump(self, timeout: float = 0.05) -> bool:
        """Read what is there (waiting up to ``timeout``); False once nothing more can come."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:             # EIO: every holder of the terminal has closed it
            return False
        if data:
            self.chunks.append(data)
        return bool(data)

    def wait_for(self, condition, timeout: float = 20, what: str = "output"):
        """Read until ``condition(text)`` holds (or ``condition`` is a string in the text)."""
        check = (lambda t: condition in t) if isinstance(condition, str) else condition
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            found = check(self.text)
            if found:
                return found
            if time.monotonic() > deadline or (self.proc.poll() is not None
                                               and not self.pump(0.2)):
                pytest.fail(f"waited in vain for {what}; the terminal shows:\n"
                            f"{self.text[-3000:]}")

    def resize(self, rows: int, cols: int) -> None:
        """The window now has ``rows`` x ``cols``: TIOCSWINSZ, then SIGWINCH to hog (it has
        its own session, so the kernel signals no foreground group of this terminal)."""
        while self.pump(0):
            if not select.select([self.master], [], [], 0)[0]:
                break
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.resizes.append((sum(len(c) for c in self.chunks), rows, cols))
        self.size = (rows, cols)
        os.kill(self.proc.pid, signal.SIGWINCH)

    def screen(self, reflow: bool = True) -> "Screen":
        """What a terminal shows after all that was drawn, resizes included; ``reflow``:
        one that re-wraps lines on a resize (VTE, kitty, iTerm2), else one that cuts
        them (xterm)."""
        data = b"".join(self.chunks)
        screen = Screen(*self.first_size)
        done = 0
        for at, rows, cols in self.resizes:
            screen.feed(data[done:at].decode(errors="replace"))
            screen.resize(rows, cols, reflow)
            done = at
        screen.feed(data[done:].decode(errors="replace"))
        return screen

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the terminal's foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait_exit(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"the process on the terminal did not exit within {timeout}s:\n"
                            f"{self.text[-3000:]}")
            self.pump()
        self.ended_at = time.monotonic()
        while self.pump(0.2):
            pass
        os.close(self.master)
        return self.proc.wait()

    @property
    def wall_s(self) -> float:
        return (self.ended_at or time.monotonic()) - self.started


def rows_with(text: str, *words: str):
    """Lines of the (ANSI-stripped) terminal text that hold every one of ``words``."""
    return [line for line in text.splitlines() if all(w in line for w in words)]


CSI = re.compile(r"\x1b\[([0-9;?]*)([ -/]*)([@-~])"          # a control sequence
                 r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"        # an OSC string (a title)
                 r"|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


class Screen:
    """A small terminal emulator for what rich draws: printable characters (one cell
    each), CR, LF, backspace, cursor moves, erasing the line or the screen; colours and
    modes are ignored. ``overflows`` counts the characters written past the last column
    (the terminal wrapped them onto a line of their own: a line that did not fit)."""

    def __init__(self, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        self.lines = [[] for _ in range(rows)]
        self.row = self.col = 0
        self.overflows = 0

    def _down(self) -> None:
        self.row += 1
        if self.row >= self.rows:
            self.lines.pop(0)
            self.lines.append([])
            self.row = self.rows - 1

    def _put(self, char: str) -> None:
        if self.col >= self.cols:
            self.overflows += 1
            self.col = 0
            self._down()
        line = self.lines[self.row]
        line.extend(" " * (self.col - len(line) + 1))
        line[self.col] = char
        self.col += 1

    def feed(self, text: str) -> None:
        at = 0
        while at < len(text):
            m = CSI.match(text, at)
            if m:
                at = m.end()
                if m.group(3):
                    self._csi(m.group(1), m.group(3))
                continue
            char = text[at]
            at += 1
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self._down()
            elif char == "\b":
                self.col = max(0, self.col - 1)
            elif char >= " " and char != "\x7f":
                self._put(char)

    def _csi(self, params: str, final: str) -> None:
        if params.startswith("?"):
            return              # modes: cursor shown or hidden, ...
        args = [int(p) if p else 0 for p in params.split(";")] if params else []
        n = max(1, args[0]) if args else 1
        line = self.lines[self.row]
        if final == "A":
            self.row = max(0, self.row - n)
        elif final == "B":
            self.row = min(self.rows - 1, self.row + n)
        elif final == "C":
            self.col = min(self.cols - 1, self.col + n)
        elif final == "D":
            self.col = max(0, self.col - n)
        elif final == "G":
            self.col = min(self.cols - 1, n - 1)
        elif final in "Hf":
            self.row = min(self.rows - 1, n - 1)
            self.col = min(self.cols - 1, (args[1] if len(args) > 1 and args[1] else 1) - 1)
        elif final == "K":
            how = args[0] if args else 0
            if how == 2:
                line.clear()
            elif how == 1:
                line[:self.col + 1] = " " * min(len(line), self.col + 1)
            else:
                del line[self.col:]
        elif final == "J":
            how = args[0] if args else 0
            if how in (2, 3):
                self.lines = [[] for _ in range(self.rows)]
            elif how == 0:
                del line[self.col:]
                for later in self.lines[self.row + 1:]:
                    later.clear()

    def resize(self, rows: int, cols: int, reflow: bool) -> None:
        """The window resized: lines wider than ``cols`` are re-wrapped (``reflow``) or
        cut; lines that no longer fit go up into the scrollback."""
        lines, row = [], self.row
        for i, line in enumerate(self.lines):
            if i == self.row:
                row = len(lines) + (min(self.col, max(len(line) - 1, 0)) // cols
                                    if reflow else 0)
            if reflow and len(line) > cols:
                lines.extend(line[j:j + cols] for j in range(0, len(line), cols))
            else:
                lines.append(line[:cols])
        drop = max(0, row + 1 - rows)
        lines = lines[drop:]
        row -= drop
        lines = (lines + [[] for _ in range(rows)])[:rows]
        self.lines, self.rows, self.cols = lines, rows, cols
        self.row, self.col = row, min(self.col, cols - 1)

    @property
    def text(self) -> list:
        """The screen's lines, trailing blanks removed; empty lines at the bottom dropped."""
        out = ["".join(line).rstrip() for line in self.lines]
        while out and not out[-1]:
            out.pop()
        return out
