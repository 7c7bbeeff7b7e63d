"""Files that other processes read while they change, and the times written in them.

``atomic_write`` and ``replaced_atomically`` replace a file in one step with
``os.replace`` (never remove-then-rename), so a reader sees the old file or the
whole new one. ``iso`` / ``from_iso`` are the time format of INFO and of the
recovery that reads it back. The job folders (``jobdir``), the store and the
per-user registry of runners share these; they know nothing of either.
"""
import errno
import os
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Iterator, Optional


def iso(ts: Optional[float]) -> Optional[str]:
    """ISO 8601 with the local UTC offset, to the millisecond."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def from_iso(value: object) -> Optional[float]:
    """Seconds since the epoch from an INFO time (None if absent or malformed)."""
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see all of it or nothing."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            data = text.encode("utf-8", "surrogateescape")
            if os.write(fd, data) < len(data):      # a short write: the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)       # a failed write (disk full, read-only) leaves no temporary
        raise


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


@contextmanager
def replaced_atomically(path: str) -> Iterator[IO[str]]:
    """A text file to write that replaces ``path`` in one step when the block ends
    without an error (readers see the old file or the whole new one, never a part);
    on an error ``path`` is left as it was."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace", newline="") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise
