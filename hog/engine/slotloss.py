"""A slot whose process vanished (killed, out of memory): its jobs recorded and the
slot started again. A slot holds the reports of short jobs back while several are
handed to it (``backends.handoff``), so what it had not reported yet is read from the
job folders first (``held_back``), in the order the slot ran them: no job it began is
queued again, and none it never began is lost."""
import time
from typing import Optional

from hog.backends.base import LocalCapacity, Resizable
from hog.engine import outcomes
from hog.engine.state import RunState
from hog.messages import Dispatch
from hog.model import Outcome, Status
from hog.state.files import from_iso
from hog.state.jobread import attempt_began, folder_verdict


def consumer_died(st: RunState, slot: int, why: str) -> None:
    """A slot's executor vanished (the backend ended its job): record it, replace it.
    What it had not reported yet (a slot holds the reports of short jobs back while
    several are handed to it) is read from their folders first."""
    held_back(st, slot, why)
    handed = st.next.pop(slot, [])
    for nxt in handed:                  # never started: the slot died first
        st.withdrawing.pop(nxt.job.index, None)
        st.store.unhand(nxt.job.index)
    if handed:
        st.ready.clear()
    if slot in st.promoted:             # (nor had the one promoted there, as it heard)
        st.withdrawing.pop(st.promoted[slot], None)
        outcomes.unpromoted(st, slot)
    d = st.running.get(slot)
    if d is not None:
        pid = st.pids.get(slot)
        started = st.progress.running[slot].started
        now = time.time()
        outcomes.ended(st, outcomes.write_folder_without_consumer(
            st, d, Status.INTERRUPTED, started, now, pid, why))
    if not (st.killing or st.stopping) and isinstance(st.backend, Resizable) \
            and isinstance(st.sched, LocalCapacity) and st.sched.owns_slot(slot):
        st.display.message(f"slot {slot}: {why}; starting a new one")
        st.backend.add_slot(slot)


def held_back(st: RunState, slot: int, why: str) -> None:
    """The jobs of a vanished slot its folders show it went past (its job, then each
    job handed to it ahead that it started) are recorded in order, as it would have
    reported them: as their folders say, or interrupted where a job's end was not
    written whole (the slot started the next job first, then vanished). What is left
    is the job it ran as it vanished, recorded by the caller."""
    while True:
        d = st.running.get(slot)
        info = None if d is None else _attempt_in_folder(st, d)
        if d is None or info is None:
            return      # (promoted there but never started: given back by the caller)
        st.promoted.pop(slot, None)     # it started (its Started held back)
        handed = st.next.get(slot, [])
        went_on = bool(handed) and _attempt_in_folder(st, handed[0]) is not None
        verdict = folder_verdict(st.layout, d.job.index)
        if verdict is not None:
            outcome = _outcome_of(d, info, verdict, st.layout.err_path(d.job.index))
        elif went_on:
            pid = info.get("pid")
            outcome = outcomes.write_folder_without_consumer(
                st, d, Status.INTERRUPTED, from_iso(info.get("started")) or time.time(),
                time.time(), pid if isinstance(pid, int) else None, why)
        else:
            return      # it ran when the slot vanished
        outcomes.ended(st, outcome, started_next=went_on)


def _attempt_in_folder(st: RunState, d: Dispatch) -> Optional[dict]:
    """``d``'s folder's INFO if it is of ``d``'s attempt, {} if the slot began it and has
    not written its INFO yet, None if it never began (``jobread.attempt_began``)."""
    return attempt_began(st.layout, d.job.index, d.attempt)


def _outcome_of(d: Dispatch, info: dict, verdict: str, err_path: str) -> Outcome:
    """The ``Outcome`` an ended attempt's folder records (INFO, marker)."""
    ended = from_iso(info.get("ended")) or time.time()
    statuses = {s.value for s in Status}
    status = Status(info["status"]) if info.get("status") in statuses else \
        Status.SUCCEEDED if verdict == "succeeded" else Status.FAILED
    code = info.get("exit_code")
    return Outcome(index=d.job.index, name=d.name, slot=d.slot, status=status,
                   exit_code=code if isinstance(code, int) else None,
                   signal=info.get("signal"), started=from_iso(info.get("started")) or ended,
                   ended=ended, pid=info.get("pid"), attempt=d.attempt, err_path=err_path)
