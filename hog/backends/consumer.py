"""A consumer: one process per slot that executes what the scheduler sends it.

It receives a ``Dispatch``, runs the job (``spawn``) in its environment (``jobenv``),
records the attempt in its folder (``attempt``) and reports back. It decides nothing.
A ``Dispatch`` that comes while a job runs is the slot's next job (``handoff``: its
folder is made ahead; several may wait, in order): when the job ends, the next one is
spawned first and the ended one recorded after (INFO, marker, ``Ended``, then the next
one's ``Started``; a job started alone has its ``Started`` sent with what follows, or
after 50 ms, and so have the reports of short jobs while several are handed ahead);
``Withdraw`` takes it back unstarted (``Withdrawn``), and so does a ``Stop(KILL)``,
``Quit`` or the runner's EOF.
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
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Tuple, TypeVar, Union

from hog.backends import spawn, subreaper, wire
from hog.backends.attempt import Attempt
from hog.backends.handoff import HOLD_WHILE, Handoff
from hog.backends.jobenv import job_env
from hog.messages import (
    CannotWrite,
    Dispatch,
    Ended,
    Quit,
    Signal,
    Started,
    Stop,
    StopHow,
    Withdrawn,
)
from hog.model import JobProcess, Outcome, Status
from hog.signals import SignalFlags
from hog.state import staging
from hog.state.diskguard import Backoff, cannot_write, check_present, gone
from hog.state.jobdir import Layout, UnsafePath

T = TypeVar("T")


@dataclass
class _Live:
    """A job this slot started: what recording its end needs."""

    d: Dispatch
    attempt: Attempt
    pid: int
    started: float
    proc: JobProcess
    watch: spawn.Watch
    info_due: bool              # its running INFO could not be written yet
    stopped: bool = False       # it was told to stop


class Consumer(Handoff):
    def __init__(self, conn, layout: Layout, grace: float):
        super().__init__(conn, layout)
        self.grace = grace
        self.env = dict(os.environ)
        self.told_stop = False      # this attempt was stopped: its last write is tried once

    def serve(self) -> None:
        try:
            self._serve()
        finally:
            self._unstage()     # (leaving: what was made ahead never runs)

    def _serve(self) -> None:
        while not self.runner_gone and not self.quitting:
            self._drop_next()   # handed for a job that ended without starting it (the
                                # runner heard so): it goes back, never starts unasked
            try:
                message = wire.receive(self.conn)
            except (EOFError, OSError):
                return
            if isinstance(message, Quit):
                return
            if not isinstance(message, Dispatch):
                continue            # (a Stop or Withdraw for a job already ended)
            if message.ahead and not self._starts_late(message):
                self.send(Withdrawn(message.slot, message.job.index))   # given back
                continue
            self.run_from(message)

    def run_from(self, d: Dispatch) -> None:
        """Run ``d``, then each next job handed meanwhile: when a job ends, its next one
        is spawned first, and the ended job's INFO, marker and ``Ended`` come after."""
        current = self._begin(d)
        before: Optional[Ended] = None      # the job before, recorded: sent with this one
        while True:
            if isinstance(current, Outcome):
                if before is not None:
                    self.send(before)
                self.send(Ended(current))
                self.last_ok = False
                return
            live = current
            started = Started(live.d.slot, live.d.job.index, live.pid, live.started,
                              proc=live.proc)
            reports = [started] if before is None else [before, started]
            if before is None or len(self.next) >= HOLD_WHILE:
                self.hold(reports)      # (sent with what follows: its Ended if it is short,
                                        # or the next jobs' while several are handed)
            else:
                self.send(reports)      # (one wake-up; the runner hands more)
            self._stage()       # the next job's folder, made while this one runs
            status, ended = self._finish_wait(live)
            nxt = self._next_to_start(failed=status is not None or not _exited_0(live.watch))
            following = None if nxt is None else self._begin(nxt)
            before = Ended(self._record(live, status, ended), started_next=nxt is not None)
            if following is None:
                self.send(before)
                self.last_ok = before.outcome.status is Status.SUCCEEDED
                return
            current = following

    def run(self, d: Dispatch) -> Outcome:
        """Run ``d`` alone and record it (no next job)."""
        current = self._begin(d)
        if isinstance(current, Outcome):
            return current
        status, ended = self._finish_wait(current)
        return self._record(current, status, ended)

    def _begin(self, d: Dispatch) -> Union[_Live, Outcome]:
        """Make ``d``'s folder (or move the one made ahead into place) and start its
        job; an Outcome if it could not start."""
        self.told_stop = False
        started = time.time()
        attempt = self._staged_for(d)
        try:
            if attempt is None:
                attempt = self._written(d, lambda: self._open(d))
        except _Stopped as stop:    # told to stop before the folder could be made
            return _unrecorded(d, stop.status or Status.INTERRUPTED, started)
        except UnsafePath as e:     # a planted link: nothing is written through it
            return Attempt.refused(d, str(e))
        try:
            result = self._start(d, attempt)
        except BaseException:
            attempt.release()
            raise
        if isinstance(result, Outcome):
            attempt.release()       # its marker is written, or the writes were given up
        return result

    def _start(self, d: Dispatch, attempt: Attempt) -> Union[_Live, Outcome]:
        """Start the job in ``attempt``'s folder; an Outcome if it could not start."""
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
        return _Live(d, attempt, pid, started, proc, spawn.Watch(pid), info_due)

    def _finish_wait(self, live: _Live) -> Tuple[Optional[Status], float]:
        """Wait for ``live``'s job and end what it left; (why it was ended or None, when)."""
        job, pid, watch = live.d.job, live.pid, live.watch
        try:
            status = self._wait(watch, None if job.timeout is None
                                else live.started + job.timeout,
                                live.d, live.attempt if live.info_due else None)
            ended = time.time()
            if status is None:
                spawn.sweep_leftovers(pid, self.grace)
        finally:
            watch.close()
            subreaper.end_descendants(self.grace, reaped=watch.reaped)  # adopted by us
        live.stopped = self.told_stop
        return status, ended

    def _record(self, live: _Live, status: Optional[Status], ended: float) -> Outcome:
        """The ended job's last writes (INFO, marker): its Outcome."""
        told, self.told_stop = self.told_stop, live.stopped
        try:
            watch, attempt, d = live.watch, live.attempt, live.d
            assert watch.status is not None     # reaped: it exited or its group was ended
            exit_code, sig = spawn.exit_status(watch.status)
            final = status if status is not None else \
                Status.SUCCEEDED if exit_code == 0 else Status.FAILED
            usage = watch.reaped.usage()
            return self._end(d, lambda: attempt.finished(final, exit_code, sig, ended,
                                                         usage=usage),
                             lambda: attempt.outcome(final, exit_code, sig, ended, usage=usage))
        finally:
            live.attempt.release()  # the marker is written, or the writes were given up
            self.told_stop = told

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
            if message.how is StopHow.KILL:
                self._drop_next()
            raise _Stopped(message.how.status)
        if isinstance(message, Quit):
            self._drop_next()
            self.runner_gone = True     # the runner is leaving: no more to do here
            raise _Stopped(None)
        self._side_message(message)

    def _wait(self, watch: spawn.Watch, deadline: Optional[float], d: Dispatch,
              info_due: Optional[Attempt]) -> Optional[Status]:
        """Wait for the job; None when it exited by itself, else why it was ended.
        ``info_due``: the attempt whose running INFO could not be written yet (tried
        again with a backoff while the job runs)."""
        backoff = Backoff()
        retry_at = None if info_due is None else time.time() + backoff.next()
        while True:
            now = time.time()
            wake = min((t for t in (deadline, retry_at, self.report_at) if t is not None),
                       default=None)
            why = watch.wait(self.fd, None if wake is None else max(0.0, wake - now))
            if why == "exited":
                return None
            if why == "timeout":
                self.report_due()
                if deadline is not None and time.time() >= deadline:
                    spawn.end_group(watch, self.grace)
                    return Status.TIMEOUT
                due = info_due if retry_at is not None and time.time() >= retry_at else None
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
                if message.how is StopHow.KILL:     # everything stops: so does the next
                    self._drop_next()
                spawn.end_group(watch, self.grace)
                return message.how.status
            if isinstance(message, Signal):      # forwarded by the runner; the job goes on
                spawn.signal_group(watch.pid, message.signum)
            elif self._side_message(message) and isinstance(message, Dispatch):
                self._stage()   # its next job: the folder made while this one runs


class _Stopped(Exception):
    """The slot was told to stop (``status``: as what), or must give up (None), while
    a write waited for the disk."""

    def __init__(self, status: Optional[Status]):
        super().__init__(status)
        self.status = status


def _exited_0(watch: spawn.Watch) -> bool:
    return watch.status is not None and spawn.exit_status(watch.status) == (0, None)


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
    subreaper.become_subreaper()
    staging.clear_stale(layout)     # what slots killed before left made ahead
    Consumer(conn, layout, grace).serve()
