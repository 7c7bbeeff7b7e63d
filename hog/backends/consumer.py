"""A consumer: one process per slot that executes what the scheduler sends it.

It receives a ``Dispatch``, runs the job (``spawn``), writes the job folder
(``jobdir``) and reports back. It decides nothing. If the runner dies, the
consumer sees its pipe close, ends the running job's process group, records it
as interrupted and exits, so no job outlives hog.
"""
import os
import signal
import time
from typing import Dict, Iterable, Optional

from hog.backends import spawn, wire
from hog.model import (
    Dispatch,
    Ended,
    Outcome,
    Quit,
    Started,
    Status,
    Stop,
    StopHow,
    slot_label,
)
from hog.signals import SignalFlags
from hog.state.jobdir import JobFolder, Layout, info_fields


def job_env(base: Dict[str, str], d: Dispatch, folder: str) -> Dict[str, str]:
    """The environment a job sees: inherited, plus its own, plus hog's pinning."""
    env = dict(base)
    env.update(d.job.env)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(d.gpu_ids)
    env["HOG_JOB_INDEX"] = str(d.job.index)
    env["HOG_JOB_NAME"] = d.name
    env["HOG_JOB_DIR"] = folder
    env["HOG_SLOT"] = slot_label(d.slot)
    env["HOG_ATTEMPT"] = str(d.attempt)
    return env


def base_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return env


class Consumer:
    def __init__(self, conn, layout: Layout, grace: float):
        self.conn = conn
        self.fd = conn.fileno()
        self.layout = layout
        self.grace = grace
        self.env = base_env()
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
        folder = JobFolder(self.layout, job.index)
        folder.create(d.attempt)
        started = time.time()
        fields = dict(name=d.name, index=job.index, command=job.command, gpu_ids=d.gpu_ids,
                      slot=d.slot, attempt=d.attempt)
        try:
            pid = spawn.start(job.command, job_env(self.env, d, folder.path), folder.out_path,
                              folder.err_path, job.cwd)
        except OSError as e:
            return self._could_not_start(d, folder, fields, started, e)
        self.send(Started(d.slot, job.index, pid, started))
        folder.write_info(info_fields(pid=pid, status=Status.RUNNING, started=started, **fields))
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
        outcome = Outcome(index=job.index, name=d.name, slot=d.slot, status=status,
                          exit_code=exit_code, signal=sig, started=started, ended=ended, pid=pid,
                          attempt=d.attempt, err_path=folder.err_path)
        folder.finish(info_fields(pid=pid, status=status, exit_code=exit_code, signal=sig,
                                  started=started, ended=ended, **fields), outcome)
        return outcome

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

    def _could_not_start(self, d: Dispatch, folder: JobFolder, fields: dict, started: float,
                         error: OSError) -> Outcome:
        with open(folder.err_path, "a") as f:
            f.write(f"hog: could not start the job: {error}\n")
        open(folder.out_path, "a").close()
        ended = time.time()
        outcome = Outcome(index=d.job.index, name=d.name, slot=d.slot, status=Status.FAILED,
                          exit_code=None, signal=None, started=started, ended=ended,
                          attempt=d.attempt, err_path=folder.err_path, note=str(error))
        folder.finish(info_fields(pid=None, status=Status.FAILED, started=started, ended=ended,
                                  **fields), outcome)
        return outcome


def consumer_main(conn, layout: Layout, grace: float, close: Iterable) -> None:
    """Entry point of a consumer process."""
    for other in close:       # the runner's ends of every pipe: so EOF means "runner gone"
        other.close()
    flags = SignalFlags()     # terminal signals are the runner's business
    flags.install([signal.SIGINT, signal.SIGHUP, signal.SIGTERM])
    Consumer(conn, layout, grace).serve()
