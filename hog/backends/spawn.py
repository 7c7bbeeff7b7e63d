"""Start job processes and end them: the one module that spawns and kills.

Each job is ``bash -c COMMAND`` in a new session (so its own process group, and
no terminal signals reach it), stdin from /dev/null, stdout and stderr opened
straight onto its files by the spawn itself, so hog never holds job output in
memory. ``os.posix_spawn`` (vfork+exec in glibc) keeps the cost per job low.

Telling processes apart (a pid with its kernel start time) is ``hog.proc``'s;
``job_process`` is the record of a started job, ``end_leftovers`` ends what is left of
jobs whose runner died (found by that record). What a job started that left its
process group (``setsid``, a daemon) is ``hog.backends.subreaper``'s to end.

What a job used is read as its processes are reaped (``os.wait4``) and added up by
``hog.backends.rusage.Reaped``.
"""
import errno
import os
import select
import shutil
import signal
import subprocess
import time
from typing import Dict, Iterable, List, Optional, Tuple, Union

from hog.backends.rusage import Reaped
from hog.model import JobProcess, JobTrace
from hog.proc import all_pids, environ_has, is_alive, is_zombie, proc_ids, start_ticks

BASH = shutil.which("bash") or "/bin/bash"

# Signals a job must start with at their defaults: Python ignores SIGPIPE and
# SIGXFSZ, and hog's processes catch the terminal signals; ignored signals
# would otherwise be inherited across exec.
_RESET = tuple(s for s in (signal.SIGPIPE, getattr(signal, "SIGXFSZ", None), signal.SIGINT,
                           signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                           signal.SIGUSR2, signal.SIGCHLD) if s is not None)
_OUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


def _output(fd: int, target: Union[str, int]) -> tuple:
    """The spawn action that makes ``fd`` the file ``target``: a descriptor already open
    (made safely by the caller) or a path to open."""
    if isinstance(target, int):
        return (os.POSIX_SPAWN_DUP2, target, fd)
    return (os.POSIX_SPAWN_OPEN, fd, target, _OUT_FLAGS, 0o644)


def start(command: str, env: Dict[str, str], out_path: Union[str, int],
          err_path: Union[str, int], cwd: Optional[str] = None) -> int:
    """Start ``bash -c command`` in its own session; return its pid (= its pgid). Its
    stdout and stderr are ``out_path`` and ``err_path``: paths, or open descriptors."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        _output(1, out_path),
        _output(2, err_path),
    ]
    if cwd is None:
        return _spawn([BASH, "-c", command], env, actions)
    old = os.getcwd()
    os.chdir(cwd)   # posix_spawn has no chdir action; consumers are single-threaded
    try:
        return _spawn([BASH, "-c", command], env, actions)
    finally:
        os.chdir(old)


def start_hook(command: str, env: Dict[str, str], log_path: str) -> int:
    """Start a notification hook, ``bash -c command``, in its own session; its stdout
    and stderr are appended to ``log_path``. Returns its pid (= its pgid)."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return _spawn([BASH, "-c", command], env, actions)


KEEPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray", "keeper.py")


def start_piped(command: str, env: Dict[str, str], out_fd: int, err_fd: int,
                cwd: Optional[str]) -> int:
    """Start ``bash -c command`` in its own session with its stdout and stderr on
    ``out_fd``/``err_fd`` (pipes on a Ray node); returns its pid (= its pgid). Safe in
    a process with threads (a Ray worker): the working directory is set in the child."""
    proc = subprocess.Popen([BASH, "-c", command], stdin=subprocess.DEVNULL, stdout=out_fd,
                            stderr=err_fd, env=env, cwd=cwd, start_new_session=True,
                            close_fds=True)
    proc.returncode = 0     # reaped by the caller (Watch), never by subprocess
    return proc.pid


def start_keeper(python: str, grace: float, wait_s: float = 30.0) -> int:
    """Start ``keeper.py`` for this process (a Ray worker) and wait until it runs: it
    ends the process groups it is told about if this process goes away. Returns the fd
    to write ``+PGID START`` / ``-PGID`` lines to. The ``sh`` in between is there
    because Ray kills a worker's direct children when the worker exits; the keeper
    has its own session by the time this returns, out of that reach."""
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    argv = ["/bin/sh", "-c", '"$@"; exit $?', "sh", python, "-I", "-S", KEEPER,
            str(os.getpid()), repr(grace)]
    actions = [(os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_DUP2, ready_w, 1),
               (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    try:
        _spawn(argv, os.environ, actions, setsid=False)
    finally:
        os.close(r)
        os.close(ready_w)
    try:
        readable, _, _ = select.select([ready_r], [], [], wait_s)
        if not readable or not os.read(ready_r, 16):
            raise OSError("the keeper process did not start")
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(ready_r)
    return w


def _spawn(argv, env, actions, setsid: bool = True) -> int:
    return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=setsid,
                          setsigdef=_RESET, setsigmask=())


def exit_status(status: int) -> Tuple[Optional[int], Optional[str]]:
    """(exit_code, signal name) from a wait status."""
    if os.WIFSIGNALED(status):
        return None, signal.Signals(os.WTERMSIG(status)).name
    return os.WEXITSTATUS(status), None


class Watch:
    """Waits for a started job to exit, or for a file descriptor to become readable.

    Uses a pidfd where the kernel has them (Linux 5.3+), so waiting costs nothing;
    elsewhere it falls back to checking every 10 ms. ``reaped``: the job's resource
    usage once it is reaped (and that of what ``end_descendants`` reaps after it).
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.status: Optional[int] = None
        self.reaped = Reaped()
        try:
            self.pidfd: Optional[int] = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def reap(self, block: bool = False) -> bool:
        """Collect the exit status if the process has exited; True when it has."""
        if self.status is not None:
            return True
        try:
            pid, status, ru = os.wait4(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.status = 0
            return True
        if pid == 0:
            return False
        self.status = status
        self.reaped.add(ru)
        return True

    def wait(self, other_fd: Optional[int], timeout: Optional[float]) -> str:
        """Block until the job exits ("exited"), ``other_fd`` is readable ("other"),
        or ``timeout`` seconds pass ("timeout")."""
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = select.poll()
        if other_fd is not None:
            poller.register(other_fd, select.POLLIN)
        if self.pidfd is not None:
            poller.register(self.pidfd, select.POLLIN)
        while True:
            if self.reap():
                return "exited"
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = left if self.pidfd is not None else min(0.01, left if left is not None else 0.01)
            events = poller.poll(None if step is None else step * 1000)
            if any(fd == other_fd for fd, _ in events):
                if self.reap():
                    return "exited"
                return "other"
            if deadline is not None and time.monotonic() >= deadline and not self.reap():
                return "timeout"


def group_alive(pgid: int) -> bool:
    """Does the process group still have a live (not zombie) member?

    ``killpg(pgid, 0)`` alone also succeeds for a group holding only zombies (dead
    children of a killed shell, waiting for init to reap them), which would make a
    stop wait for nothing, so a positive answer is checked against ``/proc``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _live_member(pgid)


def _live_member(pgid: int) -> bool:
    try:
        names = os.listdir("/proc")
    except OSError:
        return True                       # no /proc: trust killpg
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except OSError as e:
        if e.errno == errno.EPERM:
            return True
        raise


def end_group(watch: Watch, grace: float) -> None:
    """Terminate a job's whole process group: TERM, up to ``grace`` s, then KILL.

    Returns once the leader is reaped and no process is left in the group.
    """
    pgid = watch.pid
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        watch.wait(None, min(0.05, max(0.0, deadline - time.monotonic())))
        if watch.status is not None and not group_alive(pgid):
            return
    signal_group(pgid, signal.SIGKILL)
    watch.reap(block=True)
    for _ in range(200):   # the kernel takes a moment to tear a killed group down
        if not group_alive(pgid):
            return
        time.sleep(0.005)


def sweep_leftovers(pgid: int, grace: float) -> bool:
    """After a job's leader exited: end processes it left behind in its group.

    Returns True when something was left behind.
    """
    if not signal_group(pgid, signal.SIGTERM) or not _live_member(pgid):
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.01)
    if group_alive(pgid):
        signal_group(pgid, signal.SIGKILL)
    return True


# ------------------------------------------------------------ process identity
def job_process(pid: int) -> JobProcess:
    """The record of a job just started by ``start`` (its own session: pgid = sid =
    pid); about 20 µs, one read of ``/proc/PID/stat``."""
    ids = proc_ids(pid)
    if ids is None:      # already gone and reaped: nothing can be left of it by pid
        return JobProcess(pid, pid, pid, "")
    return JobProcess(pid, ids[1], ids[2], ids[3])


def leftovers(trace: JobTrace) -> List[int]:
    """The live processes left of a job: members of its process group or session while
    those numbers still name the job's (the leader alive with the recorded start time,
    or gone; a pid reused by a newer leader is not the job's), and processes carrying
    its environment variable; started no earlier than the job."""
    proc = trace.proc
    same_numbers = proc is not None
    if proc is not None:
        leader = proc_ids(proc.pid)
        same_numbers = leader is None or not proc.start or leader[3] == proc.start
    since = 0 if proc is None else start_ticks(proc.start)
    needle = trace.env.encode("utf-8", "surrogateescape")
    found = []
    for pid in all_pids():
        ids = proc_ids(pid)
        if ids is None or start_ticks(ids[3]) < since or pid == os.getpid() or is_zombie(pid):
            continue
        if (same_numbers and proc is not None and (ids[1] == proc.pgid or ids[2] == proc.sid)) \
                or (needle and environ_has(pid, needle)):
            found.append(pid)
    return found


def end_leftovers(traces: Iterable[JobTrace], grace: float) -> Dict[JobTrace, int]:
    """End whatever is left of jobs whose runner died (``leftovers``): TERM to each
    process found, and to the job's process group while it is the job's, up to
    ``grace`` s, then KILL. Returns, for each job that had something left, how many
    processes were. They are not our children (init or a subreaper reaps them): done
    once none is alive."""
    found = {t: leftovers(t) for t in traces}
    found = {t: pids for t, pids in found.items() if pids}
    if not found:
        return {}

    def any_alive() -> bool:
        return any(is_alive(pid) for pids in found.values() for pid in pids)
    _signal_all(found, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any_alive():
        time.sleep(0.02)
    if any_alive():
        _signal_all({t: leftovers(t) + pids for t, pids in found.items()}, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any_alive():
            time.sleep(0.005)
    return {t: len(pids) for t, pids in found.items()}


def _signal_all(found: Dict[JobTrace, List[int]], sig: int) -> None:
    for t, pids in found.items():
        p = t.proc
        if p is not None:
            leader = proc_ids(p.pid)
            if leader is None or leader[3] == p.start:     # the group is still the job's
                signal_group(p.pgid, sig)
        for pid in pids:
            kill_pid(pid, sig)


def kill_pid(pid: int, sig: int) -> None:
    """``sig`` to ``pid``; nothing if it is gone or not ours."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
