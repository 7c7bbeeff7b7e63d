"""A job folder's writer lock: an ``flock`` on the folder, held by whoever writes an
attempt's ending (the slot from ``Attempt.open`` to the marker, a runner recording a job
that ended without its slot). A runner recovering the job after its runner died waits
for it, so it never judges (or queues again) a folder still being written.
"""
import fcntl
import os
import time
from typing import Optional


class FolderLock:
    """The writer's lock of a job folder, held while this object is (``release``, or
    dropping the last reference, lets go; so does the holder's death)."""

    def __init__(self, fd: int):
        self.fd: Optional[int] = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    __del__ = release


def lock_folder(path: str, wait_s: float) -> Optional[FolderLock]:
    """Take the writer's lock of a job folder, waiting up to ``wait_s`` s; None when
    the folder is missing or the lock is still held then."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    return flock_fd(fd, wait_s)


def flock_fd(fd: int, wait_s: float) -> Optional[FolderLock]:
    """``fd`` (a folder) locked exclusively, waiting up to ``wait_s`` s; None (``fd``
    closed) when it is still held by another writer then."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return FolderLock(fd)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)
        except OSError:
            os.close(fd)
            return None
