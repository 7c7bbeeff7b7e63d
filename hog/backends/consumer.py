"""A consumer: one process per slot that executes what the scheduler sends it.

It receives a ``Dispatch``, runs the job (``spawn``) in its environment (``jobenv``),
records the attempt in its folder (``attempt``) and reports back. It decides nothing.
If the runner dies, the consumer sees its pipe close, ends the running job's process
group, records it as interrupted and exits, so no job outlives hog.
"""
import os
import signal
import time
from typing import Iterable, Optional

from hog.backends import spawn, wire
from hog.backends.attempt import Attempt
from hog.backends.jobenv import job_env
from hog.model import Dispatch, Ended, Outcome, Quit, Started, Status, Stop, StopHow
from hog.signals import SignalFlags
from hog.state.jobdir import Layout, UnsafePath


class Consumer:
    def __init__(self, conn, layout: Layout, grace: float):
        self.conn = conn
        self.fd = conn.fileno()
        self.layout = layout
        self.grace = grace
        self.env = dict(os.environ)
        self.runner_gone = False

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
        job = d.job
        try:
            attempt = Attempt.open(self.layout, d)
        except UnsafePath as e:         # a planted link: nothing is written through it
            return Attempt.refused(d, str(e))
        try:
            out, err = attempt.streams()
        except UnsafePath as e:
            attempt.folder.close()
            return Attempt.refused(d, str(e))
        started = time.time()
        try:
            pid = spawn.start(job.command, job_env(self.env, d, d.gpu_ids, attempt.path),
                              out, err, job.cwd)
        except OSError as e:
            return attempt.ended_unrun(Status.FAILED, f"could not start the job: {e}",
                                       note=str(e), started=started)
        attempt.close_output()          # the job has its own copies
        self.send(Started(d.slot, job.index, pid, started))
        attempt.started(pid, started)
        watch = spawn.Watch(pid)
        try:
            status = self._wait(watch, None if job.timeout is None else started + job.timeout)
            ended = time.time()
            if status is None:
                spawn.sweep_leftovers(pid, self.grace)
        finally:
            watch.close()
        exit_code, sig = spawn.exit_status(watch.status)
        if status is None:
            status = Status.SUCCEEDED if exit_code == 0 else Status.FAILED
        return attempt.finished(status, exit_code, sig, ended)

    def _wait(self, watch: spawn.Watch, deadline: Optional[float]) -> Optional[Status]:
        """Wait for the job; None when it exited by itself, else why it was ended."""
        while True:
            left = None if deadline is None else max(0.0, deadline - time.time())
            why = watch.wait(self.fd, left)
            if why == "exited":
                return None
            if why == "timeout":
                spawn.end_group(watch, self.grace)
                return Status.TIMEOUT
            try:
                message = wire.receive(self.conn)
            except (EOFError, OSError):
                self.runner_gone = True
                message = Stop(StopHow.KILL)
            if isinstance(message, Stop):
                spawn.end_group(watch, self.grace)
                return message.how.status


def consumer_main(conn, layout: Layout, grace: float, close: Iterable) -> None:
    """Entry point of a consumer process."""
    for other in close:       # the runner's ends of every pipe: so EOF means "runner gone"
        other.close()
    flags = SignalFlags()     # terminal signals are the runner's business
    flags.install([signal.SIGINT, signal.SIGHUP, signal.SIGTERM])
    Consumer(conn, layout, grace).serve()
