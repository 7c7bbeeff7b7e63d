"""Reading the end of a growing file cheaply: the last line of a job's output for
the dashboard (a stat per redraw, a few KB read only when the file grew), the end
of a failed job's stderr for the report (``err_tail``), and following a file as it
grows for ``hog logs -f``.
"""
import os
import re
from typing import Dict, Optional, Tuple

from hog.state.files import open_read
from hog.state.jobdir import Layout

TAIL_BYTES = 4096
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|"
                      r"[\x00-\x08\x0b-\x1f\x7f]")


def last_line(path: str, size: Optional[int] = None, limit: int = TAIL_BYTES) -> str:
    """The last non-empty line of ``path`` (a carriage return also ends a line, as
    progress bars use it), without terminal escapes; '' when there is none."""
    try:
        with open(open_read(path), "rb") as f:
            if size is None:
                size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").replace("\r", "\n")
    for line in reversed(text.split("\n")):
        line = _CONTROL.sub("", line).strip()
        if line:
            return line
    return ""


def err_tail(layout: Layout, index: int, max_bytes: int = 4096, max_lines: int = 30) -> str:
    """The end of a job's stderr as a terminal would show it: the last ``max_lines``
    lines of at most ``max_bytes``, colour codes removed, and of a line rewritten with
    carriage returns (progress bars) only its last version. '' if there is none."""
    try:
        with open(open_read(layout.err_path(index)), "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = _ANSI.sub("", data.decode("utf-8", "replace"))
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    if size > max_bytes and len(lines) > 1:
        lines = lines[1:]                   # the first one is cut
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines[-max_lines:])


class TailCache:
    """Last lines of several files, re-read only when a file changed size."""

    def __init__(self) -> None:
        self._seen: Dict[str, Tuple[int, float, str]] = {}

    def latest(self, *paths: str) -> str:
        """The last line of whichever of ``paths`` was written to last."""
        best, best_mtime = "", -1.0
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            if st.st_size == 0 or st.st_mtime < best_mtime:
                continue
            cached = self._seen.get(path)
            if cached is not None and cached[0] == st.st_size:
                line = cached[2]
            else:
                line = last_line(path, st.st_size)
                self._seen[path] = (st.st_size, st.st_mtime, line)
            if line:
                best, best_mtime = line, st.st_mtime
        return best

    def forget_except(self, keep) -> None:
        """Drop files no longer shown, so the cache stays as small as the view."""
        keep = set(keep)
        for path in [p for p in self._seen if p not in keep]:
            del self._seen[path]


class Follower:
    """Reads what was appended to a file since the last call; notices when the file
    was replaced (a retried job's next attempt starts a new file)."""

    def __init__(self, path: str):
        self.path = path
        self.fd: Optional[int] = None
        self.ino: Optional[int] = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def replaced(self) -> bool:
        """True when the path now names another file than the one being read."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return self.ino is not None and st.st_ino != self.ino

    def pump(self, write, chunk: int = 1 << 16) -> int:
        """Pass what was appended since the last call to ``write``, a chunk at a time;
        returns how many bytes (0 while the file does not exist)."""
        if self.fd is None:
            try:
                self.fd = open_read(self.path)
            except OSError:
                return 0
            self.ino = os.fstat(self.fd).st_ino
        total = 0
        while True:
            data = os.read(self.fd, chunk)
            if not data:
                return total
            write(data)
            total += len(data)
