"""The slot as a child subreaper: what a job starts and leaves outside its process
group (``setsid``, a daemon's double fork) becomes the slot's child instead of init's,
and is ended and reaped when the job ends (``end_descendants``), with what it used added
to the job's (``hog.backends.rusage.Reaped``). Signals go through ``hog.backends.spawn``.
"""
import ctypes
import os
import signal
import time
from typing import Iterable, List, Optional

from hog.backends.rusage import Reaped
from hog.backends.spawn import kill_pid, signal_group
from hog.proc import children_of, proc_ids

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process (a slot) the reaper of its orphaned descendants: what a job
    starts and leaves (``setsid``, a daemon's double fork) becomes our child instead of
    init's, so ``end_descendants`` finds it. Linux >= 3.4, no privilege needed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def end_descendants(grace: float, keep: Iterable[int] = (),
                    reaped: Optional[Reaped] = None) -> int:
    """After a job ended: end every process it left that became our child (a subreaper
    adopts them), TERM, up to ``grace`` s, then KILL, and reap them; their own orphans
    come to us in turn and go the same way. ``keep``: children not to touch; ``reaped``
    adds up what the reaped ones used. Returns how many were ended. Cheap when nothing
    is left: one read of our children list."""
    if not _any_child():
        return 0                # (the common case, asked in one system call)
    keep = set(keep)
    ended = 0
    for _ in range(50):                      # rounds: each adopts the orphans of the last
        kids = [pid for pid in children_of(os.getpid()) if pid not in keep]
        if not kids:
            return ended
        live = [pid for pid in kids if not _reap(pid, reaped=reaped)]
        if not live:
            continue
        ended += len(live)
        _signal_kids(live, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while live and time.monotonic() < deadline:
            time.sleep(0.01)
            live = [pid for pid in live if not _reap(pid, reaped=reaped)]
        _signal_kids(live, signal.SIGKILL)
        for pid in live:
            _reap(pid, block=True, reaped=reaped)
    return ended


def _any_child() -> bool:
    """Has this process a child, alive or not? ``waitid`` without waiting or reaping: it
    fails with ECHILD only when there is none. Between two jobs of a slot that is the
    answer almost always, and reading the children from ``/proc`` costs 0.15 ms there."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _signal_kids(pids: List[int], sig: int) -> None:
    """``sig`` to each child, and to its process group where it leads one (a ``setsid``
    escaper's own children go with it)."""
    for pid in pids:
        ids = proc_ids(pid)
        if ids is not None and ids[1] == pid:
            signal_group(pid, sig)
        kill_pid(pid, sig)


def _reap(pid: int, block: bool = False, reaped: Optional[Reaped] = None) -> bool:
    """Reap child ``pid`` if it has exited; True when it is gone."""
    try:
        done, _, ru = os.wait4(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return True
    if done != 0 and reaped is not None:
        reaped.add(ru)
    return done != 0
