"""Process identity, read from ``/proc``: a pid is reused by the kernel, a pid together
with its start time is not. The runner registry, the store's runner liveness, the Ray
keeper and the Ray node tell processes apart with it; it sits at the bottom of the
import graph (standard library only) so that each of them can use it.
"""
import os


def proc_start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` ('' if unknown): a pid plus this is unique."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:].split()[19].decode()
    except (OSError, ValueError, IndexError):
        return ""


def is_zombie(pid: int) -> bool:
    """Has ``pid`` exited without being reaped by its parent yet?"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
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
