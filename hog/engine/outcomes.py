"""What comes back from the slots, and jobs that end without running.

Backend events go into the store (``started``, ``ended``); a ``Started`` is written
on the next tick (``flush_started``), or with its job's end if that comes first (one
statement: a short job's row changes twice, not three times), never in a transaction
of its own (recovery reads the pid from INFO while the store lacks it). When a slot's
job ends, the job handed to it ahead (``dispatch.predispatch``) counts as running in
its place (``promote``; its row says so once its start is stored); one the slot gave
back (``Withdrawn``) is queued again, or cancelled. A failed or timed-out attempt with
retries left is queued again; a final outcome is counted (``Progress``), shown, handed
to the watched directory and the hooks. A slot whose executor vanished has its job
recorded as interrupted and is replaced. Jobs that can never run here (unschedulable)
or whose dependencies failed (skipped) get a job folder, a status and an outcome like
any other.
"""
import time
from dataclasses import replace
from typing import List, Optional, Tuple, cast

from hog.backends.attempt import Attempt, add_gpu_usage
from hog.backends.base import LocalCapacity, Resizable, implements
from hog.engine import control, intake, limits, reruns, slotloss, waiting, writable
from hog.engine.progress import Running
from hog.engine.state import SHORT_S, RunState, handed_jobs
from hog.messages import (
    BackendFailed,
    CannotWrite,
    Dispatch,
    Ended,
    Event,
    SlotLost,
    Started,
    StopHow,
    Withdrawn,
)
from hog.model import Job, JobProcess, Outcome, Status
from hog.sources.watch import finish
from hog.state.diskguard import cannot_write, check_present
from hog.state.files import UnsafePath
from hog.state.store import JobRow
from hog.state.withdrawn import clear_withdrawn


def on_event(st: RunState, event: Event) -> None:
    if isinstance(event, Started):
        writable.slot_wrote(st, event.slot)
        st.sched.started(event.index)
        slot, pid, started, chosen = event.slot, event.pid, event.started, event.gpu_ids
        st.pids[slot] = pid
        gpus = ",".join(st.running[slot].gpu_ids if chosen is None else chosen)
        reruns.started(st, event.index, gpus.split(","))
        handed = st.promoted.get(slot) == event.index   # its row says 'handed' until now
        if handed:
            del st.promoted[slot]
            confirmed(st, slot, event.index)
        st.started_due.append((event, handed))  # stored on the tick, or with its end
        if st.monitor is not None:
            st.monitor.ours = frozenset(st.pids.values())
            st.monitor.track(pid, gpus.split(",") if gpus else ())
        r = st.progress.running.get(slot)
        if r is not None:
            r.started = started
            r.gpus = gpus
        st.display.job_started(slot, st.running[slot].name, gpus, pid)
    elif isinstance(event, Ended):
        writable.slot_wrote(st, event.outcome.slot)
        ended(st, event.outcome, event.started_next)
    elif isinstance(event, Withdrawn):
        withdrawn(st, event.slot, event.index)
    elif isinstance(event, SlotLost):
        writable.slot_wrote(st, event.slot)
        slotloss.consumer_died(st, event.slot, event.why)
    elif isinstance(event, CannotWrite):
        writable.on_cannot_write(st, event)
    elif isinstance(event, BackendFailed) and not st.fatal:
        st.fatal = event.why
        st.display.message(event.why)
        control.drain(st, event.why)


def flush_started(st: RunState, now: bool = False) -> None:
    """Store the ``Started`` events heard so far, if ``now`` (the tick, the run's end):
    a job that ends before that has its start stored with its end (``ended``), in one
    statement."""
    if not st.started_due or not now:
        return
    due, st.started_due = st.started_due, []
    for event, handed in due:
        if st.store.started(event.index, event.pid, event.started, gpus=_gpus(event),
                            proc=event.proc, handed=handed) or not handed:
            continue
        d = st.running.get(event.slot)      # cancelled meanwhile (hog kill): it stops
        if d is not None and d.job.index == event.index:
            clear_withdrawn(st.layout, event.index, d.attempt)
            st.cancelling.add(event.index)
            st.backend.stop(event.slot, StopHow.CANCEL)


def ended(st: RunState, outcome: Outcome, started_next: bool = False) -> None:
    """``outcome``'s job ended; ``started_next``: its slot started the job handed to it
    ahead (a handed job it did not start comes back as ``Withdrawn``)."""
    d = st.running.pop(outcome.slot, None)
    if outcome.ended - outcome.started < SHORT_S:      # (more are handed to it ahead)
        st.short.add(outcome.slot)
    else:
        st.short.discard(outcome.slot)
    st.calm = st.calm + 1 if outcome.status is Status.SUCCEEDED else 0
    start = _started_due(st, outcome.index)
    pid = st.pids.pop(outcome.slot, None)
    if st.monitor is not None and pid is not None:
        outcome = gpu_usage(st, outcome, pid)
    st.cancelling.discard(outcome.index)
    rerun = reruns.after_end(st, d, outcome) if d is not None and not st.killing else ""
    retry = bool(rerun) or d is not None and outcome.status in (Status.FAILED, Status.TIMEOUT) \
        and reruns.counted(st, outcome) <= (d.job.retries or 0) and not st.killing
    st.store.ended(outcome.index, outcome.status, outcome.exit_code, outcome.signal,
                   outcome.started, outcome.ended, rerun or outcome.note, requeue=retry,
                   usage=outcome.usage, start=start)
    st.promoted.pop(outcome.slot, None)     # (a handed job that could not start)
    handed = st.next.get(outcome.slot, []) if d is not None else []
    nxt = handed[0] if handed else None
    # the slot started the job handed to it, or (it reached the slot only after this
    # job ended) starts it as it comes, as a slot does after a success
    promoted = nxt is not None and d is not None and (
        started_next or outcome.status is Status.SUCCEEDED)
    if promoted:
        assert nxt is not None and d is not None
        del handed[0]
        if not handed:
            del st.next[outcome.slot]
        promote(st, d, nxt)
    else:   # its slot will not start the jobs handed to it: each comes back with its
        release(st, outcome.index)  # Withdrawn (sent, or on its way: not taken back
                                    # before, or a stale one would take back the same job
                                    # handed again)
    # (the registry hears "idle" on the tick: a slot handed its next job at once must
    # not cost two file writes per job)
    if st.monitor is not None:
        st.monitor.ours = frozenset(st.pids.values())
    if not promoted:
        st.progress.running.pop(outcome.slot, None)
    if retry:
        st.ahead += 1
        st.ready.clear()
        st.display.message(f"{outcome.name} attempt {outcome.attempt} ended "
                           f"{outcome.status.value}; "
                           + (f"{rerun} (no retry used)" if rerun else "retrying"))
        return
    account(st, outcome)


def _started_due(st: RunState, index: int) \
        -> Optional[Tuple[int, Optional[str], Optional[JobProcess]]]:
    """Job ``index``'s ``Started``, if it is not stored yet (taken from those due): its
    pid, GPU ids and process identity, stored with its end."""
    for i, (event, _) in enumerate(st.started_due):
        if event.index == index:
            del st.started_due[i]
            return event.pid, _gpus(event), event.proc
    return None


def _gpus(event: Started) -> Optional[str]:
    return None if event.gpu_ids is None else ",".join(event.gpu_ids)


def gpu_usage(st: RunState, outcome: Outcome, pid: int) -> Outcome:
    """The outcome with what the GPU monitor saw of the job (leader ``pid``), which goes
    into its INFO too (appended: the marker says the same)."""
    peak, util = st.monitor.finish(pid)
    if peak is None:
        return outcome
    usage = replace(outcome.usage, gpu_mem_peak_bytes=peak, gpu_util_mean=util)
    add_gpu_usage(st.layout, outcome.index, usage)
    return replace(outcome, usage=usage)


def promote(st: RunState, d: Dispatch, nxt: Dispatch) -> None:
    """``d`` ended and its slot runs ``nxt``, handed to it ahead, in its place; its row
    says 'running' once its ``Started`` comes (``confirmed``), or the slot gives it back
    (``withdrawn``: it reached the slot too late to start)."""
    now = time.time()
    if implements(st.sched, LocalCapacity):
        cast(LocalCapacity, st.sched).hand_over(d.job.index, nxt.job)
    st.running[nxt.slot] = nxt
    st.promoted[nxt.slot] = nxt.job.index
    reruns.placed(st, nxt)      # the jobs it shares its GPU with now (never a rerun: those
                                # are not handed ahead)
    st.ahead = max(0, st.ahead - 1)
    st.progress.running[nxt.slot] = Running(nxt.name, ",".join(nxt.gpu_ids), now,
                                            nxt.job.index)
    st.registry.update(len(st.running))
    if st.killing:      # (a slot told to kill before it starts it gives it back)
        st.backend.stop(nxt.slot, StopHow.KILL)


def confirmed(st: RunState, slot: int, index: int) -> None:
    """The slot started the job promoted there: what it was being taken back for
    applies to it as a running job."""
    if st.withdrawing.pop(index, None) == "cancel" and not st.killing:
        st.cancelling.add(index)
        st.backend.stop(slot, StopHow.CANCEL)


def unpromoted(st: RunState, slot: int) -> None:
    """The slot gave back the job promoted there (it came after the job before had
    ended, and was taken back meanwhile): it never started, and the slot is free."""
    del st.promoted[slot]
    d = st.running.pop(slot)
    st.progress.running.pop(slot, None)
    st.ahead += 1
    release(st, d.job.index, ran=False)
    st.registry.update(len(st.running))
    taken_back(st, d)


def release(st: RunState, index: int, ran: bool = True) -> None:
    """Free what job ``index`` held in the scheduler; slots that retire with it
    (``hog gpus``) are removed."""
    gone = st.sched.release(index, ran=ran)
    if gone and isinstance(st.backend, Resizable):
        for slot in gone:
            st.backend.remove_slot(slot)


def withdrawn(st: RunState, slot: int, index: int) -> None:
    """The slot gave back its next job unstarted: queued again (its attempt uncounted),
    or cancelled."""
    if st.promoted.get(slot) == index:
        unpromoted(st, slot)
        return
    handed = st.next.get(slot, [])
    d = next((h for h in handed if h.job.index == index), None)
    if d is None:
        return      # (taken back already: its slot's job ended without starting it)
    handed.remove(d)
    if not handed:
        del st.next[slot]
    taken_back(st, d)


def taken_back(st: RunState, d: Dispatch) -> None:
    """A handed job its slot will not start: queued again (its attempt uncounted), or
    cancelled."""
    index = d.job.index
    clear_withdrawn(st.layout, index, d.attempt)
    cancelled = st.withdrawing.pop(index, None) == "cancel"
    st.store.unhand(index, cancelled=cancelled)
    if not cancelled:
        back_in_ready(st, index)
    if cancelled:
        st.display.message(f"{d.name} cancelled before it started")
        intake.refresh_total(st)


def back_in_ready(st: RunState, index: int) -> None:
    """A job queued again unstarted: into the ready list at its place in run order
    (priority, then number), not the whole list read again; past the list's end the
    next reading of the queue brings it."""
    if not st.ready:
        return
    row = st.store.row(index)
    if row is None or row.status != Status.QUEUED.value:
        return
    key = (-row.priority, row.id)
    for i, (r, _) in enumerate(st.ready):
        if (-r.priority, r.id) > key:
            st.ready.insert(i, (row, limits.with_defaults(st, row.job())))
            return


def unhand_all(st: RunState) -> None:
    """The run ends: jobs still handed to slots (which never start them now) are
    queued again."""
    for d in handed_jobs(st):
        st.store.unhand(d.job.index, cancelled=st.withdrawing.get(d.job.index) == "cancel")
    st.next.clear()


def account(st: RunState, outcome: Outcome) -> None:
    if st.cfg.source is not None and st.cfg.source.kind == "watch":
        finish(st.cfg.source.path, outcome, st.layout.out_path(outcome.index),
               st.layout.err_path(outcome.index))
    st.progress.record(outcome)
    st.display.job_ended(outcome)
    limits.check_failures(st)           # --max-failures
    if st.hooks is not None:
        from hog.engine.hooks import job_variables  # the hooks module: only with hooks
        st.hooks.job_ended(outcome.name, job_variables(outcome, st.layout, st.progress))


def write_folder_without_consumer(st: RunState, d: Dispatch, status: Status, started: float,
                                  ended: float, pid: Optional[int], why: str,
                                  note: Optional[str] = None, new: bool = False) -> Outcome:
    """End ``d``'s attempt in its folder: one whose slot vanished (its folder as it is),
    or with ``new`` one that never ran (an earlier attempt's files moved aside first).
    A folder refused as unsafe (a planted link) is left untouched; when the disk refuses
    it (full, read-only, the output directory gone), the outcome alone (the store
    records it; nothing new starts until the disk takes writes again)."""
    opened: List[Attempt] = []

    def write() -> Outcome:
        check_present(st.layout.state_dir)      # never recreate a removed output directory
        if not opened:                          # (once: a retry only ends it)
            opened.append(Attempt.open(st.layout, d) if new
                          else Attempt.reopen(st.layout, d, pid))
        return opened[0].ended_unrun(status, why, note=note, started=started, ended=ended)
    try:
        return write()
    except UnsafePath as e:
        st.display.message(str(e))
        return Attempt.refused(d, str(e), ended)
    except OSError as e:
        refused = cannot_write(e)
        if refused is None:
            raise
        st.folders_due.append(write)            # written once the disk takes it
        writable.failed(st, refused)
        return Outcome(index=d.job.index, name=d.name, slot=d.slot, status=status,
                       exit_code=None, signal=None, started=started, ended=ended, pid=pid,
                       attempt=d.attempt, err_path=st.layout.err_path(d.job.index),
                       note=why if note is None else note)


def skip(st: RunState, row: JobRow, job: Job, why: str) -> None:
    end_unrun(st, row, job, Status.SKIPPED, why, "skipped: " + why)


def end_unrun(st: RunState, row: JobRow, job: Job, status: Status, why: str,
              message: str) -> None:
    """Record a job that ends without running (skipped, unschedulable)."""
    name = job.name or st.layout.folder_name(job.index)
    st.display.message(f"{name} ({job.where}) {message}")
    now = time.time()
    d = Dispatch(job=job, slot=-1, gpu_ids=(), name=name, attempt=row.attempt or 1,
                 source_pos=row.source_pos)
    st.store.set_status(row.id, status, why)
    st.ahead = max(0, st.ahead - 1)
    outcome = write_folder_without_consumer(st, d, status, now, now, None, f"{name}: {why}",
                                            note=why, new=True)
    account(st, replace(outcome, attempt=1))    # (counted as a first attempt, as ever)


def cannot_run_here(st: RunState, row: JobRow, job: Job, name: str, why: str,
                    finishing: bool = False) -> None:
    """``job`` can never run on this runner: left queued while another runner might run
    it (``waiting``), else (or ``finishing``: this runner, the last that might, ends)
    ended unschedulable."""
    st.not_here.add(row.id)
    if not finishing and waiting.leave(st, row, job, f"{name} {why}"):
        return
    st.left.pop(row.id, None)
    if not st.store.still_queued(row.id):   # another runner ran it or ended it
        return
    end_unrun(st, row, job, Status.UNSCHEDULABLE, why, f"{why}; it will not run")
