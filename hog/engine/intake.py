"""The job source's side of the loop: jobs from the producer's queue into the store,
a batch at a time, at most ``LOOKAHEAD`` jobs ahead of the slots; the sweep's total
as the source is read; the end of the source (or its error).
"""
import pickle
import select
import sqlite3
from typing import List, Optional, Tuple

from hog.engine import writable
from hog.engine.state import READY_AHEAD, RunState, handed_count
from hog.messages import JobMsg, SourceFailed, SourceTotal
from hog.model import Job
from hog.state.diskguard import cannot_write

INGEST_BATCH = 500
LOOKAHEAD = 1000    # jobs read from the source ahead of the slots (an endless yielder is fine)


def ingest(st: RunState) -> None:
    """Move jobs the producer has ready into the store, a batch at a time, staying at
    most LOOKAHEAD jobs ahead of the slots. Nothing is read from the source while hog
    cannot write; jobs read whose write the disk refused are held, and tried again on
    each turn until the store takes them (the tick carries on only once it has)."""
    if not may_ingest(st) or (st.held is None and not writable.may_start(st)):
        return
    if st.held is None and not st.producer_exited and not st.taken_ahead \
            and not source_ready(st):
        return
    if not st.store.commit_turn():      # the turn so far first: ingest commits on its own
        return
    batch, ended = st.held if st.held is not None else take(st)
    st.held = None
    try:
        store_jobs(st, batch)
    except (OSError, sqlite3.Error) as e:
        why = cannot_write(e)
        if why is None:
            raise
        st.held = (batch, ended)
        writable.failed(st, why)
        return
    show_total(st)
    if ended is not None:
        source_ended(st, ended)
        refresh_total(st)


def take(st: RunState) -> Tuple[List[Job], Optional[str]]:
    """The jobs the producer has ready (up to a batch), and how the source ended if it
    did (None while it goes on; '' for its end, else its error)."""
    ended: Optional[str] = None
    # While slots are idle, hand the first jobs over at once; then take big batches. A
    # turn whose jobs started nothing (jobs that had succeeded already, on a resume)
    # doubles the next one, so a finished sweep is read in batches, not 4 jobs a turn.
    if st.running:
        limit = INGEST_BATCH
        st.idle_take = 0
    else:
        limit = st.idle_take = min(INGEST_BATCH, max(4, 2 * st.sched.room(),
                                                     2 * st.idle_take))
    batch, st.taken_ahead = st.taken_ahead[:limit], st.taken_ahead[limit:]
    while len(batch) < limit:
        if not source_ready(st):
            if st.producer_exited and not batch:
                ended = f"the job source process died (exit code {st.producer.exitcode})"
            break
        message = pickle.loads(st.queue.get())
        if isinstance(message, JobMsg):     # (the rest of a batch: stored next time)
            room = limit - len(batch)
            batch.extend(message.jobs[:room])
            st.taken_ahead.extend(message.jobs[room:])
        elif isinstance(message, SourceTotal):
            st.source_total = message.total
        else:
            ended = message.text if isinstance(message, SourceFailed) else ""
            break
    st.received += len(batch)
    return batch, ended


def source_ready(st: RunState) -> bool:
    """Has the producer's queue a message to take? One ``poll`` of its pipe, kept from
    call to call (the reader's own ``poll`` builds a selector each time: a dear call on
    a turn that comes once a job)."""
    reader = st.queue._reader
    fileno = getattr(reader, "fileno", None)
    if fileno is None:      # (a queue that is not a pipe: the inline test harness's)
        return bool(reader.poll())
    if st.queue_poll is None:
        st.queue_poll = select.poll()
        st.queue_poll.register(fileno(), select.POLLIN)
    return bool(st.queue_poll.poll(0))


def store_jobs(st: RunState, batch: List[Job]) -> None:
    if batch and st.cfg.source is not None and st.cfg.source.kind == "watch":
        st.store.add(batch)           # scripts are new jobs, not source positions
        st.base_total += len(batch)
        st.ahead += len(batch)
        st.ready.clear()
    elif batch:
        counts = st.store.ingest(batch, st.resume, st.runner_id)
        st.ingested = [a + b for a, b in zip(st.ingested, counts)]
        st.base_total += counts[0] + counts[1]
        st.ahead += counts[0] + counts[1]
        if not still_the_head(st, batch, again=counts[1]):
            st.ready.clear()  # new jobs may come before what we fetched


def still_the_head(st: RunState, batch: List[Job], again: int) -> bool:
    """Is the ready list still the head of the queue with ``batch`` stored? So when every
    new job sorts after its last (none queued again with its old number, none of a
    higher priority) and it still offers the scheduler a choice: at least half its
    length, not only jobs waiting for others. Then it is kept, not read again from the
    store after every batch the source brings (once a job, for a streaming source)."""
    if again or len(st.ready) < READY_AHEAD // 2:
        return False
    last = st.ready[-1][1].priority
    return all(job.priority <= last for job in batch) \
        and any(job.index not in st.waiting_deps for _, job in st.ready)


def may_ingest(st: RunState) -> bool:
    """Read on while fewer than LOOKAHEAD jobs wait, or while nothing runs (so a queue
    whose head cannot start yet never stalls the source)."""
    if st.held is not None:         # read before the disk refused them
        return True
    if st.producer is None or st.source_done:
        return False
    return st.ahead < LOOKAHEAD or not st.running


def show_total(st: RunState) -> None:
    """The sweep's total, once it is known: the source counted (``SourceTotal``) or read
    to its end. Before that it is unknown (None), not the jobs read so far: a hook that
    compares HOG_FINISHED with HOG_TOTAL must not see a sweep of 4 jobs as 1 of 1."""
    if st.source_total is None and not st.source_done:
        st.progress.total = None
        return
    unread = 0
    if st.source_total is not None and not st.source_done:
        unread = max(0, st.source_total - st.received)
    st.progress.total = st.base_total + unread


def source_ended(st: RunState, error: str) -> None:
    st.source_done = True
    st.source_error = error
    gone = 0
    if not error:
        st.store.set_meta("ingest_done", "1")
        if st.cfg.source is not None and st.cfg.source.kind != "watch":
            gone = st.store.end_reading()
    added, again, skipped = st.ingested
    if st.resume and (again or skipped or gone):
        st.display.message(f"resuming {st.cfg.output_dir}/: skipped {skipped} job(s) "
                           f"that already succeeded; {again} queued again (failed, "
                           f"interrupted, changed or never started), {added} new"
                           + (f"; {gone} no longer in the source (kept, not run)"
                              if gone else ""))


def refresh_total(st: RunState) -> None:
    # handed to a slot or claimed ahead for none yet (engine.reserve): not started
    st.ahead = st.store.runnable_count() + handed_count(st) + len(st.reserve)
    st.base_total = st.progress.finished + len(st.running) + st.ahead
    show_total(st)
