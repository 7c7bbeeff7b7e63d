"""The producer: reads a job source and streams its jobs into a bounded queue.

It runs in its own process, so a slow or heavy source (a yielder that imports a
framework, or pauses for minutes between items) never holds up the runner, and
the queue's bound gives back-pressure: memory does not grow with the source.
Messages are pickled ``hog.messages``: ``JobMsg``, ``SourceTotal`` (a file
source's job count, from a thread that reads the file once more after the first job is
out, so the view can show an ETA), then ``SourceEnd`` or ``SourceFailed``.

A file's jobs go in batches (``Batcher``): up to ``BATCH`` jobs, or what was read in
``BATCH_S``, per message, so the runner takes one message, not one per job; the first
job goes alone, at once. A source that may wait between jobs (a yielder, a watched
directory, a pipe) sends each job as it comes.
"""
import os
import pickle
import signal
import stat
import threading
import time
from typing import Callable, List

from hog.errors import HogError, SourceError
from hog.messages import JobMsg, SourceEnd, SourceFailed, SourceMsg, SourceTotal
from hog.model import Job
from hog.signals import SignalFlags, set_parent_death_signal
from hog.sources import SourceSpec, count_jobs, open_source

BATCH = 64          # jobs per message at most
BATCH_S = 0.002     # a batch is sent once its first job has waited this long


def dumps(message: SourceMsg) -> bytes:
    """One message as the queue carries it (the runner unpickles it)."""
    return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)


def _put_count(spec: SourceSpec, put) -> None:
    total = count_jobs(spec)
    if total is not None:
        put(dumps(SourceTotal(total)))


def batched(spec: SourceSpec) -> bool:
    """Is ``spec`` read without waits (a regular file), so its jobs may be batched?"""
    try:
        return spec.kind in ("text", "yaml") and stat.S_ISREG(os.stat(spec.path).st_mode)
    except OSError:
        return False


class Batcher:
    """Jobs into ``JobMsg``s: each job at once (``size`` 1), or batches of up to
    ``size`` jobs, each sent once full or ``BATCH_S`` after its first job was read."""

    def __init__(self, put: Callable[[bytes], None], size: int):
        self.put = put
        self.size = size
        self.jobs: List[Job] = []
        self.since = 0.0
        self.sent = 0

    def add(self, job: Job) -> None:
        if not self.jobs:
            self.since = time.monotonic()
        self.jobs.append(job)
        if self.sent == 0 or len(self.jobs) >= self.size \
                or time.monotonic() - self.since >= BATCH_S:
            self.flush()

    def flush(self) -> None:
        if self.jobs:
            self.put(dumps(JobMsg(tuple(self.jobs))))
            self.sent += len(self.jobs)
            self.jobs = []


def produce(spec: SourceSpec, put) -> None:
    """Put every job of ``spec`` with ``put``, then an end or error message."""
    n = 0
    counter = None
    message: SourceMsg
    out = Batcher(put, BATCH if batched(spec) else 1)
    try:
        for job in open_source(spec):
            out.add(job)
            n += 1
            if counter is None and spec.kind in ("text", "yaml"):
                counter = threading.Thread(target=_put_count, args=(spec, put), daemon=True)
                counter.start()
        message = SourceEnd(n)
    except (HogError, SourceError) as e:
        message = SourceFailed(str(e))
    except Exception as e:  # noqa: BLE001 - reported, not raised, so jobs already queued run
        message = SourceFailed(f"{spec.path}: reading the job source failed: "
                               f"{type(e).__name__}: {e}")
    out.flush()         # (the jobs read before an error still run)
    if counter is not None:
        counter.join()
    put(dumps(message))


def producer_main(spec: SourceSpec, queue) -> None:
    """Entry point of the producer process."""
    set_parent_death_signal(signal.SIGKILL)   # it owns no jobs: nothing to clean up
    SignalFlags().install([signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2])
    produce(spec, queue.put)
    queue.close()
    queue.join_thread()
