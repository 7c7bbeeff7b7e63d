"""A process on a real pseudo-terminal, for the tests of what hog draws there: its
output is read as it comes, keys can be typed, Ctrl-C is SIGINT to its group."""
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
