"""Notification hooks: ``--on_job_end CMD`` and ``--on_finish CMD``.

Each hook is ``bash -c CMD`` (started by ``hog.backends.spawn``, in its own session) with
the job's or the sweep's outcome in ``HOG_*`` environment variables, its output
appended to ``<output_dir>/.hog/hooks.log``. Hooks run one at a time in a thread
fed by a bounded queue, so a slow or hanging hook never holds up the runner's
loop: each is ended (its whole process group) after ``--hook_timeout`` seconds,
job hooks that find the queue full are dropped, and a failing hook is logged
and shown, never fatal. At exit hog waits for queued job hooks for at most the
timeout, then runs ``on_finish`` and waits for it for at most the timeout.
"""
import atexit
import os
import queue
import signal
import threading
import time
from typing import Callable, Dict, Optional, Tuple

from hog.backends import spawn
from hog.engine.progress import summary
from hog.errors import EXIT_FAILED, EXIT_INT, EXIT_OK, EXIT_TERM, EXIT_USAGE
from hog.humanize import shown_path
from hog.model import Outcome, Status, slot_label
from hog.state.reading import SweepReader

QUEUE_MAX = 10000          # job hooks waiting to run; more are dropped (and logged)
GRACE_S = 1.0              # SIGTERM -> SIGKILL for a hook that overran its time
SHOWN_PROBLEMS = 3         # hook failures shown on the display; the rest only in the log
LOG_NAME = "hooks.log"
SWEEP_STATUS = {EXIT_OK: "succeeded", EXIT_FAILED: "failed", EXIT_USAGE: "error",
                EXIT_INT: "interrupted", EXIT_TERM: "terminated"}

Item = Tuple[str, str, Dict[str, str]]      # (hook, what it is about, its variables)


def job_variables(o: Outcome, layout, progress) -> Dict[str, str]:
    """What ``--on_job_end`` sees about a job that ended (for good: not a retry)."""
    unrun = o.status in (Status.SKIPPED, Status.UNSCHEDULABLE)
    return {
        "HOG_HOOK": "on_job_end",
        "HOG_EVENT": "job_ended",
        "HOG_JOB_NAME": o.name,
        "HOG_JOB_INDEX": str(o.index),
        "HOG_JOB_STATUS": o.status.value,
        "HOG_JOB_EXIT_CODE": "" if o.exit_code is None else str(o.exit_code),
        "HOG_JOB_SIGNAL": o.signal or "",
        "HOG_JOB_NOTE": o.note,
        "HOG_JOB_DIR": layout.folder(o.index),
        "HOG_JOB_OUT": layout.out_path(o.index),
        "HOG_JOB_ERR": layout.err_path(o.index),
        "HOG_JOB_DURATION_S": f"{o.duration_s:.3f}",
        "HOG_JOB_ATTEMPT": str(o.attempt),
        "HOG_JOB_SLOT": "" if unrun else slot_label(o.slot),
        "HOG_SWEEP_DIR": layout.root,
        **count_variables(progress),
    }


def gpu_variables(gpu: str, quarantined: bool, why: str, layout, progress) -> Dict[str, str]:
    """What ``--on_job_end`` sees when a GPU is quarantined or let back (HOG_EVENT says
    which; no HOG_JOB_* variable is set)."""
    return {
        "HOG_HOOK": "on_job_end",
        "HOG_EVENT": "gpu_quarantined" if quarantined else "gpu_released",
        "HOG_GPU": gpu,
        "HOG_GPU_NOTE": why,
        "HOG_SWEEP_DIR": layout.root,
        **count_variables(progress),
    }


def count_variables(progress) -> Dict[str, str]:
    """The sweep's counts so far: HOG_SUCCEEDED, HOG_FAILED, HOG_CANCELLED, ..."""
    counts = {"succeeded": progress.succeeded, "failed": progress.failed,
              "cancelled": progress.cancelled, "finished": progress.finished,
              "running": len(progress.running), "total": progress.total}
    return {f"HOG_{key.upper()}": "" if n is None else str(n) for key, n in counts.items()}


def sweep_variables(progress, layout, exit_code: int) -> Dict[str, str]:
    """What ``--on_finish`` sees about the sweep."""
    not_started = 0
    if os.path.isdir(layout.state_dir):
        store = SweepReader(layout.state_dir)
        try:
            not_started = store.counts().get("queued", 0)
        finally:
            store.close()
    return {
        "HOG_HOOK": "on_finish",
        "HOG_SWEEP_DIR": layout.root,
        "HOG_SWEEP_STATUS": SWEEP_STATUS.get(exit_code, "failed"),
        "HOG_EXIT_CODE": str(exit_code),
        "HOG_DURATION_S": f"{time.time() - progress.started_at:.3f}",
        "HOG_FAILED_JOBS": " ".join(o.name for o in progress.failures),
        "HOG_NOT_STARTED": str(not_started),
        "HOG_SUMMARY": summary(progress, not_started, "", "").splitlines()[0][len("hog: "):],
        **count_variables(progress),
    }


class Hooks:
    """Runs hooks in a background thread; the runner only enqueues."""

    def __init__(self, on_job_end: Optional[str], on_finish: Optional[str], timeout: float,
                 state_dir: str, say: Callable[[str], None]):
        self.commands = {"on_job_end": on_job_end, "on_finish": on_finish}
        self.timeout = timeout
        self.log_path = os.path.join(state_dir, LOG_NAME)
        self.say = say
        self.queue: "queue.Queue[Optional[Item]]" = queue.Queue(maxsize=QUEUE_MAX)
        self.closing = threading.Event()
        self.drain_until = 0.0
        self.final: Optional[Item] = None
        self.current: Optional[int] = None          # pid of the hook running now
        self.problems = 0
        self.dropped = 0
        self.base_env = dict(os.environ)
        self.thread = threading.Thread(target=self._serve, name="hog-hooks", daemon=True)
        self.thread.start()
        atexit.register(self.abort)

    # ------------------------------------------------------- runner side
    def job_ended(self, what: str, variables: Dict[str, str]) -> None:
        if not self.commands["on_job_end"]:
            return
        try:
            self.queue.put_nowait(("on_job_end", what, variables))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                self._problem(f"on_job_end: more than {QUEUE_MAX} hooks waiting; dropping "
                              f"hooks until the queue drains")

    def close(self, variables: Optional[Dict[str, str]]) -> None:
        """Run on_finish (if set) after the queued job hooks, and wait, bounded: the
        queued job hooks get ``timeout`` seconds in all, on_finish ``timeout`` more."""
        if variables is not None and self.commands["on_finish"] \
                and os.path.isdir(os.path.dirname(self.log_path)):
            self.final = ("on_finish", "the sweep", variables)
        self.drain_until = time.monotonic() + self.timeout
        self.closing.set()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        self.thread.join(2 * self.timeout + 4 * GRACE_S + 5)
        self.abort()
        atexit.unregister(self.abort)

    def abort(self) -> None:
        """Kill the hook running now, if any (hog is exiting)."""
        self.closing.set()
        self.drain_until = 0.0
        self.final = None
        pid = self.current
        if pid is not None:
            spawn.signal_group(pid, signal.SIGKILL)

    # ------------------------------------------------------- thread side
    def _serve(self) -> None:
        skipped = 0
        while True:
            try:
                item = self.queue.get(timeout=0.1 if self.closing.is_set() else None)
            except queue.Empty:
                item = None
            if item is None:
                if self.closing.is_set() and self.queue.empty():
                    break
                continue
            if self.closing.is_set() and time.monotonic() > self.drain_until:
                skipped += 1
                continue
            self._run(*item)
        if skipped:
            self._log(f"on_job_end: {skipped} hook(s) not run: hog was exiting")
        if self.dropped:
            self._log(f"on_job_end: {self.dropped} hook(s) dropped: the queue was full")
        final = self.final
        if final is not None:
            self._run(*final)

    def _run(self, hook: str, what: str, variables: Dict[str, str]) -> None:
        command = self.commands[hook]
        assert command is not None          # only hooks that are set are run
        began = time.monotonic()
        try:
            pid = spawn.start_hook(command, {**self.base_env, **variables}, self.log_path)
        except OSError as e:
            self._problem(f"{hook} for {what} could not start: {e}")
            return
        self.current = pid
        watch = spawn.Watch(pid)
        try:
            timed_out = watch.wait(None, self.timeout) == "timeout"
            if timed_out:
                spawn.end_group(watch, GRACE_S)
            else:
                spawn.sweep_leftovers(pid, GRACE_S)
        finally:
            watch.close()
            self.current = None
        took = time.monotonic() - began
        assert watch.status is not None     # reaped: it exited or its group was ended
        code, sig = spawn.exit_status(watch.status)
        if timed_out:
            self._problem(f"{hook} for {what} did not end within {self.timeout:g}s; its "
                          f"processes were killed")
        elif code != 0:
            self._problem(f"{hook} for {what} failed ({f'exit {code}' if sig is None else sig})"
                          f" after {took:.2f}s")
        else:
            self._log(f"{hook} for {what}: ok in {took:.2f}s")

    def _problem(self, text: str) -> None:
        self._log(text)
        self.problems += 1
        if self.problems <= SHOWN_PROBLEMS:
            more = " (further hook problems only in that log)" \
                if self.problems == SHOWN_PROBLEMS else ""
            self._say(f"hook: {text}; see {shown_path(self.log_path)}{more}")

    def _say(self, text: str) -> None:
        try:
            self.say(text)
        except Exception:  # noqa: BLE001 - a display problem must not stop the hooks
            pass

    def _log(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, f"{stamp} hog: {text}\n".encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError:
            pass


def start_hooks(config, layout, say: Callable[[str], None]) -> Optional[Hooks]:
    """The hook runner for a run's configuration, or None when it sets no hook."""
    if not (config.on_job_end or config.on_finish):
        return None
    return Hooks(config.on_job_end, config.on_finish, config.hook_timeout, layout.state_dir,
                 say)
