"""What runs on a Ray node: one job as one Ray task, and ending a job's group.

``run_job`` is a generator task. It starts ``bash -c CMD`` in its own session and
process group (told to this worker's keeper, which ends the group if the worker
dies), then yields, in order:
``("started", {...})`` with the pid, host, node and the GPU ids Ray assigned;
``("out", bytes)`` / ``("err", bytes)`` chunks of the job's output, at least every
``FLUSH_S`` seconds while there is any; and ``("ended", {...})`` with the job's
status. The bridge on hog's machine writes the job folder from these items, so
nothing needs a shared filesystem. ``end_job`` is a small task sent to the same
node to end a job's process group (``hog kill``, ``hog stop --now``); ``signal_job``
one that forwards SIGUSR1 / SIGUSR2 to it.

Ray workers import this module on every node, so hog must be installed there (the
same version as on hog's machine).
"""
import os
import select
import socket
import sys
import time
from typing import Dict, Optional, Tuple

from hog.backends import spawn
from hog.backends.jobenv import job_dir_variable, job_env
from hog.model import JobTrace
from hog.proc import proc_start_time

FLUSH_S = 0.5             # output reaches hog's machine at least this often
CHUNK = 1 << 18           # at most this many bytes per output item
READ = 1 << 16
# Variables Ray sets for its own worker processes, not part of the node's environment.
RAY_WORKER_ONLY = ("OMP_NUM_THREADS", "PYTHONBREAKPOINT", "SPT_NOENV", "RAY_RAYLET_PID",
                   "RAY_JOB_ID", "RAY_LD_PRELOAD_ON_WORKERS")


def node_env(worker_env: Dict[str, str]) -> Dict[str, str]:
    """The environment a job inherits on this node: the worker's, without what Ray
    adds for its workers only (kept where the node's raylet has it too)."""
    raylet = _environ(worker_env.get("RAY_RAYLET_PID"))
    env = dict(worker_env)
    for key in RAY_WORKER_ONLY:
        if raylet is None or key not in raylet:
            env.pop(key, None)
    return env


def _environ(pid: Optional[str]) -> Optional[Dict[str, str]]:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return {k.decode(errors="replace"): v.decode(errors="replace")
            for k, _, v in (item.partition(b"=") for item in data.split(b"\0") if item)}


def _workdir(wanted: Optional[str], explicit: bool) -> Tuple[Optional[str], str]:
    """Where the job runs: the job's cwd, else hog's own if this node has it."""
    if wanted is None or explicit or os.path.isdir(wanted):
        return wanted, ""
    return None, f"hog: {wanted} (hog's working directory) does not exist on " \
                 f"{socket.gethostname()}; the job runs in {os.getcwd()}\n"


class _Output:
    """A job's stdout or stderr pipe, read as it comes and handed out in chunks."""

    def __init__(self, fd: int, kind: str):
        self.fd = fd
        self.kind = kind
        self.buf = bytearray()
        self.open = True
        os.set_blocking(fd, False)

    def read(self) -> None:
        while self.open and len(self.buf) < CHUNK:
            try:
                data = os.read(self.fd, READ)
            except BlockingIOError:
                return
            if not data:
                self.open = False
                os.close(self.fd)
                return
            self.buf += data

    def take(self):
        data, self.buf = bytes(self.buf[:CHUNK]), self.buf[CHUNK:]
        return (self.kind, data)


_keeper: Optional[int] = None            # this worker's keeper: fd to tell it about jobs


def _keep(line: str, grace: float) -> None:
    """Tell this worker's keeper (started on first use) that a job started or ended."""
    global _keeper
    if _keeper is None:
        _keeper = spawn.start_keeper(sys.executable, grace)
    if line:
        os.write(_keeper, line.encode() + b"\n")


def run_job(spec: dict):
    """A Ray generator task: run one job, stream its output, report how it ended."""
    import ray  # ray: this runs inside a Ray task
    context = ray.get_runtime_context()
    gpu_ids = sorted((str(g) for g in context.get_accelerator_ids().get("GPU", [])),
                     key=lambda g: (not g.isdigit(), int(g) if g.isdigit() else 0, g))
    cwd, note = _workdir(spec["cwd"], spec["cwd_explicit"])
    grace = spec["grace"]
    info = dict(host=socket.gethostname(), node=context.get_node_id(), gpu_ids=gpu_ids)
    _keep("", grace)                # the keeper runs before the first job does
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started = time.time()
    try:
        env = job_env(node_env(dict(os.environ)), spec["dispatch"], gpu_ids, spec["folder"])
        pid = spawn.start_piped(spec["command"], env, out_w, err_w, cwd)
    except OSError as e:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        yield ("ended", dict(info, started=started, status="failed", exit_code=None,
                             signal=None, ended=time.time(), pid=None, started_ok=False,
                             note=f"could not start the job: {e}"))
        return
    os.close(out_w)
    os.close(err_w)
    leader_start = proc_start_time(pid)
    # what a job starts outside its group and session (setsid, daemons) still carries
    # its HOG_JOB_DIR: found and ended by that when the job ends (a subreaper is no
    # choice here: the worker would adopt Ray's processes and its own keeper)
    trace = JobTrace(spawn.job_process(pid), job_dir_variable(spec["folder"]))
    _keep(f"+{pid} {leader_start}", grace)
    outputs = [_Output(out_r, "out"), _Output(err_r, "err")]
    watch = spawn.Watch(pid)
    try:
        yield ("started", dict(info, pid=pid, leader_start=leader_start, started=started))
        if note:
            yield ("err", note.encode())
        timed_out = yield from _follow(watch, outputs, spec["timeout"], started, grace)
        ended = time.time()
        spawn.sweep_leftovers(pid, grace)      # what the job left behind in its group
        spawn.end_leftovers([trace], grace)    # and outside it, before "ended" is told:
        yield from _drain(outputs)             # the driver may be gone right after
        assert watch.status is not None     # reaped: it exited or its group was ended
        exit_code, sig = spawn.exit_status(watch.status)
        yield ("ended", dict(status="timeout" if timed_out else None, exit_code=exit_code,
                             signal=sig, ended=ended, note="", pid=pid, started_ok=True,
                             usage=watch.reaped.usage().fields()))  # (CPU, peak memory)
    except BaseException:
        # ray.cancel (KeyboardInterrupt) or anything unexpected: the job must not
        # outlive its task.
        if watch.status is None:
            spawn.end_group(watch, grace)
        else:
            spawn.sweep_leftovers(pid, grace)
        raise
    finally:
        watch.close()
        spawn.end_leftovers([trace], grace)     # cancelled, or anything unexpected
        _keep(f"-{pid}", grace)
        for o in outputs:
            if o.open:
                os.close(o.fd)


def _follow(watch: spawn.Watch, outputs, timeout: Optional[float], started: float,
            grace: float):
    """Relay the job's output until it exits (ending it at its timeout); returns
    whether it timed out."""
    deadline = None if timeout is None else started + timeout
    last_flush = time.monotonic()
    poller = select.poll()
    for o in outputs:
        poller.register(o.fd, select.POLLIN)
    if watch.pidfd is not None:
        poller.register(watch.pidfd, select.POLLIN)
    while not watch.reap():
        wait = FLUSH_S if watch.pidfd is not None else 0.01
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.time()))
        poller.poll(wait * 1000)
        for o in outputs:
            o.read()
            if not o.open:
                _unregister(poller, o.fd)
        if deadline is not None and time.time() >= deadline and not watch.reap():
            spawn.end_group(watch, grace)
            return True
        now = time.monotonic()
        if now - last_flush >= FLUSH_S:
            last_flush = now
            for o in outputs:
                if o.buf:
                    yield o.take()
        for o in outputs:
            while len(o.buf) >= CHUNK:
                yield o.take()
    return False


def _drain(outputs, wait_s: float = 2.0):
    """Every process of the job's group is gone: read its output to the end (waiting
    at most ``wait_s`` for a process that left the group and still holds a pipe)."""
    deadline = time.monotonic() + wait_s
    for o in outputs:
        while o.open and time.monotonic() < deadline:
            select.select([o.fd], [], [], max(0.0, deadline - time.monotonic()))
            o.read()
            while len(o.buf) >= CHUNK:
                yield o.take()
        if o.buf:
            yield o.take()


def _unregister(poller, fd: int) -> None:
    try:
        poller.unregister(fd)
    except KeyError:
        pass


def end_job(pgid: int, leader_start: str, grace: float) -> bool:
    """A Ray task on the job's node: end its process group (TERM, grace, KILL), if the
    group's leader is still the process that started the job. True if it was there."""
    if not leader_start or proc_start_time(pgid) != leader_start:
        return False
    return spawn.sweep_leftovers(pgid, grace)


def signal_job(pgid: int, leader_start: str, signum: int) -> bool:
    """A Ray task on the job's node: send ``signum`` to its process group (SIGUSR1 or
    SIGUSR2 the runner received), if the group's leader is still the job's."""
    if not leader_start or proc_start_time(pgid) != leader_start:
        return False
    return spawn.signal_group(pgid, signum)
