"""Process identity, read from ``/proc``: a pid is reused by the kernel, a pid together
with its start time is not. The runner registry, the store's runner liveness, the Ray
keeper and the Ray node tell processes apart with it; it sits at the bottom of the
import graph (standard library only) so that each of them can use it. ``proc_ids`` is
what a job's record holds (its group, session and start time), so that whatever is
left of it can be found and told apart from a newer process with the same numbers.
"""
import os
from typing import List, Optional, Tuple


def host() -> str:
    """This machine's name (``socket.gethostname()``'s answer, without loading socket)."""
    return os.uname().nodename


def _stat(pid: int) -> bytes:
    """``/proc/PID/stat``, read with an ``open``, a ``read`` and a ``close`` (a buffered
    file object adds six more system calls: a slot reads it for every job it starts)."""
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 4096)
        while len(data) % 4096 == 0 and data:      # (a short read is its end)
            more = os.read(fd, 4096)
            if not more:
                break
            data += more
        return data
    finally:
        os.close(fd)


def proc_start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` ('' if unknown): a pid plus this is unique."""
    try:
        data = _stat(pid)
        return data[data.rindex(b")") + 2:].split()[19].decode()
    except (OSError, ValueError, IndexError):
        return ""


def is_zombie(pid: int) -> bool:
    """Has ``pid`` exited without being reaped by its parent yet?"""
    try:
        data = _stat(pid)
        return data[data.rindex(b")") + 2:][:1] in (b"Z", b"X")
    except (OSError, ValueError):
        return False


def runs_job_of(pid: int, folder: str) -> bool:
    """Is ``pid`` alive and a hog job of ``folder`` (its ``HOG_JOB_DIR``)? A reused pid
    is told apart by its environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return False
    return b"HOG_JOB_DIR=" + os.fsencode(os.path.abspath(folder)) in env and not is_zombie(pid)


def proc_ids(pid: int) -> Optional[Tuple[int, int, int, str]]:
    """(parent pid, process group, session, kernel start time) of ``pid``; None if it
    is gone (a zombie still has them: see ``is_zombie``)."""
    try:
        data = _stat(pid)
        fields = data[data.rindex(b")") + 2:].split()
        return int(fields[1]), int(fields[2]), int(fields[3]), fields[19].decode()
    except (OSError, ValueError, IndexError):
        return None


def all_pids() -> List[int]:
    """Every process id in ``/proc`` ([] if it cannot be read)."""
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def start_ticks(start: str) -> int:
    """A start time (``proc_start_time``) as a number, to compare (0 if unknown)."""
    return int(start) if start.isdigit() else 0


def is_alive(pid: int) -> bool:
    """Does ``pid`` exist and has not exited (not a zombie)?"""
    return proc_ids(pid) is not None and not is_zombie(pid)


def environ_has(pid: int, entry: bytes) -> bool:
    """Is ``entry`` (``NAME=value``) in the environment ``pid`` was started with?"""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return entry in f.read().split(b"\0")
    except OSError:
        return False


def children_of(pid: int) -> List[int]:
    """The children of ``pid`` (alive or zombie), a single-threaded process."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:     # CONFIG_PROC_CHILDREN
            return [int(x) for x in f.read().split()]
    except OSError:
        pass
    kids = []
    for other in all_pids():
        ids = proc_ids(other)
        if ids is not None and ids[0] == pid:
            kids.append(other)
    return kids
