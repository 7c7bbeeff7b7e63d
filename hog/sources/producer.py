"""The producer: reads a job source and streams its jobs into a bounded queue.

It runs in its own process, so a slow or heavy source (a yielder that imports a
framework, or pauses for minutes between items) never holds up the runner, and
the queue's bound gives back-pressure: memory does not grow with the source.
Messages are pickled ``hog.model`` messages: ``JobMsg``, ``SourceTotal`` (a file
source's job count, from a thread that reads the file once more after the first job is
out, so the view can show an ETA), then ``SourceEnd`` or ``SourceFailed``.
"""
import os
import pickle
import signal
import stat
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from hog.errors import HogError
from hog.model import JobMsg, SourceEnd, SourceFailed, SourceMsg, SourceTotal
from hog.signals import SignalFlags, set_parent_death_signal
from hog.sources.text import SourceError, text_jobs, text_lines
from hog.sources.yielder import iterable_jobs, yielder_jobs


@dataclass(frozen=True)
class SourceSpec:
    kind: str   # "text" | "yaml" | "yielder" | "watch" | "python"
    path: str   # for "python": a label naming the sweep (hog.run in Python)
    exit_when_empty: bool = True   # watch: stop once to_run/ is empty
    items: Any = field(default=None, compare=False, repr=False)   # "python": the jobs


def open_source(spec: SourceSpec):
    if spec.kind == "text":
        return text_jobs(spec.path)
    if spec.kind == "yielder":
        return yielder_jobs(spec.path)
    if spec.kind == "yaml":
        from hog.sources.yaml import yaml_jobs
        return yaml_jobs(spec.path)
    if spec.kind == "python":     # handed over by fork, never pickled
        return iterable_jobs(spec.items, spec.path)
    if spec.kind == "watch":
        from hog.sources.watch import watch_jobs
        return watch_jobs(spec.path, spec.exit_when_empty)
    raise ValueError(spec.kind)


def count_jobs(spec: SourceSpec) -> Optional[int]:
    """How many jobs a file source holds (None for sources that are not files, or when
    the file cannot be read to the end: the stream reports that error itself)."""
    try:
        if not stat.S_ISREG(os.stat(spec.path).st_mode):   # a pipe can be read only once
            return None
        if spec.kind == "text":
            return sum(1 for _ in text_lines(spec.path))
        if spec.kind == "yaml":
            from hog.sources.yaml import yaml_jobs
            return sum(1 for _ in yaml_jobs(spec.path))
    except Exception:  # noqa: BLE001 - counting is a nicety; reading reports errors
        return None
    return None


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
    SignalFlags().install([signal.SIGINT, signal.SIGHUP])
    produce(spec, queue.put)
    queue.close()
    queue.join_thread()
