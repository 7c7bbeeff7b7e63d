"""A consumer: one process per slot that executes what the scheduler sends it.

It receives a ``Dispatch``, runs the job (``spawn``) in its environment (``jobenv``),
records the attempt in its folder (``attempt``) and reports back. It decides nothing.
If the runner dies, the consumer sees its pipe close, ends the running job's process
group, records it as interrupted and exits, so no job outlives hog.

A write the disk refuses (full, read-only, the output directory gone) never ends the
job: the slot tells the runner (``CannotWrite``), keeps the job running and tries the
write again with a backoff until it is done or the slot is told to stop.

The job's identity (pid, process group, session, start time) is in its INFO as soon
as it runs, and in the ``Started`` event the runner records in the store: a runner
that recovers the job after a crash ends what is left of it by these. The consumer is
a child subreaper, so what a job leaves behind outside its process group (``setsid``,
daemons) becomes the consumer's child and is ended when the job ends.
"""
import os
import signal
import time
from typing import Callable, Iterable, Optional, TypeVar

from hog.backends import spawn, wire
from hog.backends.attempt import Attempt
from hog.backends.jobenv import job_env
from hog.model import (
    CannotWrite,
    Dispatch,
    Ended,
    Outcome,
    Quit,
    Signal,
    Started,
    Status,
    Stop,
    StopHow,
)
from hog.signals import SignalFlags
from hog.state.diskguard import Backoff, cannot_write, check_present, gone
from hog.state.jobdir import Layout, UnsafePath

T = TypeVar("T")


class Consumer:
    def __init__(self, conn, layout: Layout, grace: float):
        self.conn = conn
        self.fd = conn.fileno()
        self.layout = layout
        self.grace = grace
        self.env = dict(os.environ)
        self.runner_gone = False
        self.told_stop = False      # this attempt was stopped: its last write is tried once

    def send(self, message) -> None:
        if self.runner_gone:
            return
        if not wire.send(self.conn, message):
            self.runner_gone = True

    def serve(self) -> None:
        while not self.runner_gone:
            try:
                message = wire.receive(self.conn)
            except (EOFError, OSError):
                return
            if isinstance(message, Dispatch):
                self.send(Ended(self.run(message)))
            elif isinstance(message, Quit):
                return

    def run(self, d: Dispatch) -> Outcome:
        self.told_stop = False
        started = time.time()
        try:
            attempt = self._written(d, lambda: self._open(d))
        except _Stopped as stop:    # told to stop before the folder could be made
            return _unrecorded(d, stop.status or Status.INTERRUPTED, started)
        except UnsafePath as e:     # a planted link: nothing is written through it
            return Attempt.refused(d, str(e))
        try:
            return self._attempt(d, attempt)
        finally:
            attempt.release()       # the marker is written, or the writes were given up

    def _attempt(self, d: Dispatch, attempt: Attempt) -> Outcome:
        """Start the job in ``attempt``'s folder, wait for it, record its end."""
        job = d.job
        started = time.time()
        try:
            out, err = self._written(d, attempt.streams)
            pid = self._written(d, lambda: spawn.start(
                job.command, job_env(self.env, d, d.gpu_ids, attempt.path), out, err,
                job.cwd))
        except _Stopped as stop:
            attempt.close_output()
            return attempt.outcome(stop.status or Status.INTERRUPTED, None, None,
                                   time.time(), started=started)
        except UnsafePath as e:
            attempt.folder.close()
            return Attempt.refused(d, str(e))
        except OSError as e:
            error = str(e)
            return self._end(d, lambda: attempt.ended_unrun(
                Status.FAILED, f"could not start the job: {error}", note=error,
                started=started),
                lambda: attempt.outcome(Status.FAILED, None, None, time.time(), error, started))
        attempt.close_output()      # the job has its own copies
        proc = spawn.job_process(pid)     # its identity: in INFO before the runner hears
        info_due = not self._tried(d, lambda: attempt.started(pid, started, proc=proc))
        self.send(Started(d.slot, job.index, pid, started, proc=proc))
        watch = spawn.Watch(pid)
        try:
            status = self._wait(watch, None if job.timeout is None else started + job.timeout,
                                d, attempt if info_due else None)
            ended = time.time()
            if status is None:
                spawn.sweep_leftovers(pid, self.grace)
        finally:
            watch.close()
            spawn.end_descendants(self.grace, reaped=watch.reaped)  # adopted by us
        assert watch.status is not None     # reaped: it exited or its group was ended
        exit_code, sig = spawn.exit_status(watch.status)
        if status is None:
            status = Status.SUCCEEDED if exit_code == 0 else Status.FAILED
        final, usage = status, watch.reaped.usage()
        return self._end(d, lambda: attempt.finished(final, exit_code, sig, ended, usage=usage),
                         lambda: attempt.outcome(final, exit_code, sig, ended, usage=usage))

    def _open(self, d: Dispatch) -> Attempt:
        check_present(self.layout.state_dir)    # never recreate a removed output directory
        return Attempt.open(self.layout, d)

    # ------------------------------------------------ writes the disk refuses
    def _end(self, d: Dispatch, write: Callable[[], Outcome],
             unwritten: Callable[[], Outcome]) -> Outcome:
        """The attempt's last write (final INFO, marker), tried until it is done or the
        slot is told to stop; then the outcome as it is."""
        try:
            return self._written(d, write)
        except _Stopped:
            return unwritten()
        except FileNotFoundError:       # its folder was removed (not the output directory)
            return unwritten()

    def _tried(self, d: Dispatch, write: Callable[[], object], told: bool = False) -> bool:
        """One try of a write that may wait (INFO while the job runs); the runner hears
        of the first refusal, and that it went through once it was ``told``."""
        try:
            write()
        except OSError as e:
            if isinstance(e, FileNotFoundError) and not gone(self.layout.state_dir):
                return True             # its folder was removed: nothing to try again
            why = cannot_write(e)
            if why is None:
                raise
            if not told:
                self.send(CannotWrite(d.slot, why))
            return False
        if told:
            self.send(CannotWrite(d.slot, ""))
        return True

    def _written(self, d: Dispatch, write: Callable[[], T]) -> T:
        """``write()``, tried again (with a backoff) while the disk cannot take it (full,
        read-only); the runner hears once that this slot is waiting. Raises ``_Stopped``
        when told to stop meanwhile, when the runner is gone, or when the output
        directory itself is gone."""
        backoff = Backoff()
        told = False
        while True:
            try:
                done = write()
                if told:
                    self.send(CannotWrite(d.slot, ""))     # it went through
                return done
            except OSError as e:
                why = cannot_write(e)
                if why is None or (isinstance(e, FileNotFoundError)
                                   and not gone(self.layout.state_dir)):
                    raise           # (a missing cwd, or a folder removed: not the disk)
            if not told:
                self.send(CannotWrite(d.slot, why))
                told = True
            if self.told_stop or self.runner_gone or gone(self.layout.state_dir):
                raise _Stopped(None)
            self._pause(backoff.next())

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` for the runner; raise ``_Stopped`` if it says stop or goes."""
        if not self.conn.poll(seconds):
            return
        try:
            message = wire.receive(self.conn)
        except (EOFError, OSError):
            self.runner_gone = True
            raise _Stopped(None)
        if isinstance(message, Stop):
            self.told_stop = True
            raise _Stopped(message.how.status)
        if isinstance(message, Quit):
            self.runner_gone = True     # the runner is leaving: no more to do here
            raise _Stopped(None)

    def _wait(self, watch: spawn.Watch, deadline: Optional[float], d: Dispatch,
              info_due: Optional[Attempt]) -> Optional[Status]:
        """Wait for the job; None when it exited by itself, else why it was ended.
        ``info_due``: the attempt whose running INFO could not be written yet (tried
        again with a backoff while the job runs)."""
        backoff = Backoff()
        retry_at = None if info_due is None else time.time() + backoff.next()
        while True:
            now = time.time()
            wake = min((t for t in (deadline, retry_at) if t is not None), default=None)
            why = watch.wait(self.fd, None if wake is None else max(0.0, wake - now))
            if why == "exited":
                return None
            if why == "timeout":
                if deadline is not None and time.time() >= deadline:
                    spawn.end_group(watch, self.grace)
                    return Status.TIMEOUT
                due = info_due
                if due is not None and due.pid is not None and due.start_time is not None:
                    pid, started = due.pid, due.start_time
                    if self._tried(d, lambda: due.started(pid, started), told=True):
                        info_due = retry_at = None
                    else:
                        retry_at = time.time() + backoff.next()
                continue
            try:
                message = wire.receive(self.conn)
            except (EOFError, OSError):
                self.runner_gone = True
                message = Stop(StopHow.KILL)
            if isinstance(message, Stop):
                self.told_stop = True
                spawn.end_group(watch, self.grace)
                return message.how.status
            if isinstance(message, Signal):      # forwarded by the runner; the job goes on
                spawn.signal_group(watch.pid, message.signum)


class _Stopped(Exception):
    """The slot was told to stop (``status``: as what), or must give up (None), while
    a write waited for the disk."""

    def __init__(self, status: Optional[Status]):
        super().__init__(status)
        self.status = status


def _unrecorded(d: Dispatch, status: Status, at: float) -> Outcome:
    """The outcome of an attempt whose folder could not even be made."""
    return Outcome(index=d.job.index, name=d.name, slot=d.slot, status=status,
                   exit_code=None, signal=None, started=at, ended=at, attempt=d.attempt,
                   note="its folder could not be written")


def consumer_main(conn, layout: Layout, grace: float, close: Iterable) -> None:
    """Entry point of a consumer process."""
    for other in close:       # the runner's ends of every pipe: so EOF means "runner gone"
        other.close()
    flags = SignalFlags()     # terminal signals (and Slurm's USR1/USR2) are the runner's business
    flags.install([signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGUSR1,
                   signal.SIGUSR2])
    spawn.become_subreaper()
    Consumer(conn, layout, grace).serve()
