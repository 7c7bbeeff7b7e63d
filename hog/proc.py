"""Process identity, read from ``/proc``: a pid is reused by the kernel, a pid together
with its start time is not. The runner registry, the store's runner liveness, the Ray
keeper and the Ray node tell processes apart with it; it sits at the bottom of the
import graph (standard library only) so that each of them can use it. ``proc_ids`` is
what a job's record holds (its group, session and start time), so that whatever is
left of it can be found and told apart from a newer process with the same numbers.
"""
import os
from typing import List, Optional, Tuple


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


def proc_ids(pid: int) -> Optional[Tuple[int, int, int, str]]:
    """(parent pid, process group, session, kernel start time) of ``pid``; None if it
    is gone (a zombie still has them: see ``is_zombie``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
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
