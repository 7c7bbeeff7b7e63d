"""Writes the disk cannot take now: full, over quota, read-only, failing, or gone.

hog's own writes (INFO, markers, the store's commits, results files) go to the output
directory, and so can fail for reasons that pass: the disk is full (``ENOSPC``, SQLite's
"database or disk is full"), a quota is reached (``EDQUOT``), the file system is
read-only (``EROFS``, "attempt to write a readonly database"), it fails (``EIO``), or
the output directory was removed (``ENOENT``). ``cannot_write`` tells those apart from
every other error (which stays a bug to raise); ``Backoff`` says when to try again;
``probe`` asks the disk whether it takes a small write now; ``WriteGuard`` is a
process's view of it, saying once what is wrong and once when it is over.
"""
import errno
import os
import sqlite3
from typing import Callable, Optional

_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ENOENT, errno.ESTALE}
_SQLITE = ("database or disk is full", "attempt to write a readonly database",
           "disk i/o error", "unable to open database file", "readonly database")
PROBE_BYTES = 4096


def cannot_write(e: BaseException) -> Optional[str]:
    """Why ``e`` says the disk cannot take a write now ("No space left on device", ...);
    None for any other error."""
    if isinstance(e, OSError) and e.errno in _ERRNOS:
        return os.strerror(e.errno)
    if isinstance(e, sqlite3.OperationalError):
        text = str(e)
        if any(m in text.lower() for m in _SQLITE):
            return text
    return None


def gone(directory: str) -> bool:
    """Is ``directory`` missing (removed while hog runs)?"""
    return not os.path.isdir(directory)


def check_present(directory: str) -> None:
    """Raise ``FileNotFoundError`` (a "cannot write" error) when ``directory`` is gone,
    so that nothing recreates a removed output directory by writing into it."""
    if gone(directory):
        raise FileNotFoundError(errno.ENOENT, "the output directory is gone", directory)


def probe(directory: str) -> Optional[str]:
    """Does ``directory`` take a small write now? None if it does, else why not (the
    file written is removed either way)."""
    path = os.path.join(directory, f".hog-probe.{os.getpid()}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        return cannot_write(e) or str(e)
    try:
        if os.write(fd, b"\0" * PROBE_BYTES) < PROBE_BYTES:
            return os.strerror(errno.ENOSPC)
        return None
    except OSError as e:
        return cannot_write(e) or str(e)
    finally:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass


class Backoff:
    """When to try a failed write again: after 0.1 s, doubling up to ``most`` s."""

    def __init__(self, first: float = 0.1, most: float = 1.0):
        self.first = first
        self.most = most
        self.delay = first

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.most, self.delay * 2)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class WriteGuard:
    """Whether this process can write to ``where`` now, as its writes found it; says
    what is wrong once when writes start failing, and once when they work again."""

    def __init__(self, where: str, say: Callable[[str], None]):
        self.where = where
        self.say = say
        self.why: Optional[str] = None

    @property
    def blocked(self) -> bool:
        return self.why is not None

    def failed(self, why: str) -> None:
        if self.why is None:
            self.say(f"cannot write to {self.where} ({why}); starting no new jobs until it "
                     f"can; running jobs go on")
        self.why = why

    def cleared(self) -> None:
        if self.why is not None:
            self.say(f"{self.where} can be written to again; carrying on")
        self.why = None
