"""Looking at processes through /proc, and waiting for conditions: shared by the
test helpers (conftest.py, queue_support.py)."""
import os
import time
from typing import Callable, Iterable, List, Optional

import pytest

TAG_VAR = "HOG_TEST_TAG"


# --------------------------------------------------------------------- /proc
def read_environ(pid: int) -> Optional[List[bytes]]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


def proc_stat(pid: int) -> Optional[List[str]]:
    """Fields of /proc/PID/stat after the command name: [0] is the state, [1] the ppid,
    [3] the session id, [11]/[12] utime/stime."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].decode().split()


def is_zombie(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is None or fields[0] in ("Z", "X")


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (PID 1 of some containers never reaps orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)


def session_of(pid: int) -> int:
    return int(proc_stat(pid)[3])


def children_of(pid: int) -> List[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = proc_stat(int(name))
            if fields and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
                found.append(int(name))
    return found


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (0 if it is gone)."""
    fields = proc_stat(pid)
    return 0 if fields is None else int(fields[11]) + int(fields[12])


def pids_whose_env(test) -> List[int]:
    """Live (not zombie) processes, other than this one, whose environment (a list of
    b"KEY=value" entries) passes ``test``."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        env = read_environ(int(name))
        if env and test(env) and not is_zombie(int(name)):
            found.append(int(name))
    return found


def tagged_pids(tag: str, also: Iterable[bytes] = ()) -> List[int]:
    """Live processes whose environment holds HOG_TEST_TAG=tag and each entry
    of ``also`` (a prefix such as b"HOG_JOB_INDEX=")."""
    needle = f"{TAG_VAR}={tag}".encode()
    also = list(also)
    return pids_whose_env(lambda env: needle in env and all(
        any(e.startswith(a) for e in env) for a in also))


def describe_pid(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f"{pid}: " + f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return str(pid)


# --------------------------------------------------------------------- waiting
def wait_for(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition"):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
