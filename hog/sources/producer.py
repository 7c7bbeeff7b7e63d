"""The producer: reads a job source and streams its jobs into a bounded queue.

It runs in its own process, so a slow or heavy source (a yielder that imports a
framework, or pauses for minutes between items) never holds up the runner, and
the queue's bound gives back-pressure: memory does not grow with the source.
Messages are pickled ``hog.messages``: ``JobMsg``, ``SourceTotal`` (a file
source's job count, from a thread that reads the file once more after the first job is
out, so the view can show an ETA), then ``SourceEnd`` or ``SourceFailed``.
"""
import pickle
import signal
import threading

from hog.errors import HogError, SourceError
from hog.messages import JobMsg, SourceEnd, SourceFailed, SourceMsg, SourceTotal
from hog.signals import SignalFlags, set_parent_death_signal
from hog.sources import SourceSpec, count_jobs, open_source


def dumps(message: SourceMsg) -> bytes:
    """One message as the queue carries it (the runner unpickles it)."""
    return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)


def _put_count(spec: SourceSpec, put) -> None:
    total = count_jobs(spec)
    if total is not None:
        put(dumps(SourceTotal(total)))


def produce(spec: SourceSpec, put) -> None:
    """Put every job of ``spec`` with ``put``, then an end or error message."""
    n = 0
    counter = None
    message: SourceMsg
    try:
        for job in open_source(spec):
            put(dumps(JobMsg(job)))
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
