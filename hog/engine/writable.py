"""The runner while hog's own writes fail: the disk is full, read-only, or the output
directory was removed.

Nothing here stops a running job: a job's own writes failing is the job's business.
While the store or a slot cannot write (``RunState.guard`` blocked), nothing new is
taken from the source or started; the user hears it once (``WriteGuard``). The store
keeps what a refused batch held (``Writer.unsaved``) and applies it on a later turn;
a slot that cannot write its job's folder keeps the job and tries again (the
consumer's business), telling the runner with ``CannotWrite``. The tick checks the
disk again (a small probe write) and carries on once it takes writes. An output
directory that is gone is for good: the run drains (running jobs go on, what can be
recorded is) and ends with a failure.
"""
import sqlite3
from typing import Optional

from hog.engine.state import RunState
from hog.messages import CannotWrite
from hog.state.diskguard import cannot_write, gone, probe


def may_start(st: RunState) -> bool:
    """May new jobs be taken from the source and started now?"""
    return not (st.guard.blocked or st.store.write_error or st.root_gone)


def failed(st: RunState, why: str) -> None:
    """One of hog's writes was refused (``why``): start nothing new until it can."""
    if check_gone(st):
        return
    if not st.guard.blocked:            # the dashboard shows it for as long as it lasts
        st.progress.notice = f"cannot write to {st.cfg.output_dir} ({why}): no new jobs"
    st.guard.failed(why)


def on_cannot_write(st: RunState, event: CannotWrite) -> None:
    """A slot cannot write its job's folder (or, with an empty ``why``, now can)."""
    if event.why:
        st.slots_blocked[event.slot] = event.why
        failed(st, event.why)
    else:
        st.slots_blocked.pop(event.slot, None)


def slot_wrote(st: RunState, slot: int) -> None:
    """The slot reported its job started or ended: its writes went through."""
    st.slots_blocked.pop(slot, None)


def after_turn(st: RunState) -> None:
    """After the turn's transaction: if the store refused it, the jobs it claimed were
    not claimed (they stay queued); they are taken back from their slots unsent."""
    why = st.store.write_error
    if why is None:
        return
    failed(st, why)
    for d in st.claimed:
        handed = st.next.get(d.slot, [])
        if any(h is d for h in handed):     # handed ahead: taken back before it is sent
            handed.remove(d)
            if not handed:
                del st.next[d.slot]
            st.store.unhand(d.job.index, later=True)    # (one claimed ahead earlier)
            continue
        st.running.pop(d.slot, None)
        st.progress.running.pop(d.slot, None)
        st.sched.release(d.job.index, ran=False)
        st.ahead += 1
    if st.claimed:
        st.ready.clear()
        st.registry.update(len(st.running))
    st.claimed.clear()


def tick(st: RunState) -> None:
    """On the tick: is the output directory still there; once writes were refused, does
    the disk take them again (then carry on)?"""
    if check_gone(st) or not st.guard.blocked:
        return
    if st.store.write_error or st.store.unsaved or st.slots_blocked or st.held is not None:
        return
    if probe(st.layout.state_dir) is None and folders_written(st):
        st.guard.cleared()
        st.progress.notice = st.stop_reason


def folders_written(st: RunState) -> bool:
    """Write the folders the runner itself could not (jobs skipped, unschedulable, of a
    lost slot); True once none is left."""
    while st.folders_due:
        try:
            st.folders_due[0]()
        except OSError as e:
            if cannot_write(e) is None:
                raise
            return False
        st.folders_due.pop(0)
    return True


def check_gone(st: RunState) -> bool:
    """True when the output directory is gone; said once, and the run drains."""
    if st.root_gone:
        return True
    if not gone(st.layout.state_dir):
        return False
    st.root_gone = True
    if gone(st.layout.root):
        what = f"the output directory {st.cfg.output_dir}"
        st.display.message(f"{what} was removed while running: starting no new jobs; "
                           f"running jobs go on, what can be recorded is")
        st.stop_reason = f"{what} was removed while running"
    else:                               # only the queue: the folders can rebuild it
        st.stop_reason = queue_lost_reason(st)
        st.display.message(st.stop_reason)
    st.fatal = st.fatal or st.stop_reason
    st.stopping = True      # as control.drain (which this module cannot import: a cycle)
    st.progress.notice = st.stop_reason
    return True


def queue_lost_reason(st: RunState) -> str:
    """What the user is told when the store's file was deleted or replaced under this
    runner (``.hog/`` removed, the file moved or overwritten)."""
    out = st.cfg.output_dir.rstrip("/") or st.cfg.output_dir
    return (f"{out}/.hog/hog.sqlite was deleted or replaced while this runner ran: no new "
            f"jobs were started; running jobs finish and are recorded in their folders; "
            f"to rebuild the queue from them: hog rebuild {out}")


def pending(st: RunState) -> bool:
    """Writes still to make before the run may end (not once it was told to stop now,
    or the output directory is gone: then what could not be recorded is lost)."""
    if st.killing or st.root_gone:
        return False
    return bool(st.store.unsaved or st.store.write_error or st.held is not None
                or st.folders_due)


def last_writes(st: RunState) -> None:
    """At the end of the run: what the store still holds unsaved, and the runner's
    retirement, tried once more; if refused, one line says what was not recorded."""
    store = st.store
    store.retry_now()
    why: Optional[str] = None
    try:
        with store.batch():
            store.retire_runner(st.runner_id)
        why = store.write_error
    except (OSError, sqlite3.Error) as e:
        why = cannot_write(e)
        if why is None:
            raise
    if why is not None and not st.root_gone:
        lost = len(store.unsaved)
        st.display.message(f"could not record the last {lost} change(s) in the store "
                           f"({why}); the job folders hold what they could")
