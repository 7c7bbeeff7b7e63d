"""Jobs claimed ahead in blocks (the run loop's, ``RunState.claims_ahead``): when a
turn claims a job to hand to a busy slot (``dispatch.predispatch``), it also claims
the next few handable jobs of the queue's head, as ``handed`` to no slot yet, in the
same transaction. The following handovers take them from here in run order, each
with no claim of its own, so a turn that only records what slots reported needs no
commit of its own (``Runner`` lets such a turn's writes join the next commit).

The reserve grows (up to ``RESERVE_MAX``) while slots use it up between two ticks,
and shrinks when a tick finds it unused (long jobs: a reserve would only be claimed
and given back). It goes back to the queue (``give_back``: queued again as before
each claim, attempts uncounted) on every tick, before requests from other shells are
read, and whenever the turn is not the plain case it is made for: the run stops,
another runner works on the queue, a slot is free, a queued job sorts before it, or
the disk refuses writes. A reserved job is ``handed`` in the store like any job
handed ahead: recovered, counted and shown as queued."""
from typing import List, Optional

from hog.engine.state import RunState
from hog.messages import Dispatch
from hog.model import Job
from hog.state.store import JobRow

RESERVE_MAX = 7     # jobs claimed ahead beyond the one handed (eight to a commit)


def size(st: RunState) -> int:
    return st.reserve_size if st.claims_ahead else 0


def ran_dry(st: RunState) -> None:
    """A handover needed a claim of its own: the reserve was too small."""
    if st.claims_ahead:
        st.reserve_size = min(RESERVE_MAX, max(1, 2 * st.reserve_size))


def add(st: RunState, row: JobRow, job: Job, attempt: int) -> None:
    st.reserve.append((row, job, attempt))


def take(st: RunState, free: List[int]) -> Optional[Dispatch]:
    """The first reserved job, as the next job of the first of ``free`` (busy one-GPU
    slots without a next job) it may run on; None (and the reserve given back) when
    it may run on none of them."""
    row, job, attempt = st.reserve[0]
    target = slot_for(st, job, free)
    if target is None:
        give_back(st)
        return None
    st.reserve.pop(0)
    st.reserve_used += 1
    st.store.assign_handed(row.id, target, ",".join(st.running[target].gpu_ids))
    return handed(st, row, job, target, attempt)


def slot_for(st: RunState, job: Job, free: List[int]) -> Optional[int]:
    """The first of ``free`` (busy one-GPU slots without a next job) ``job`` may run on."""
    return next((s for s in free if not job.gpu_ids
                 or st.running[s].gpu_ids[0] in job.gpu_ids), None)


def handed(st: RunState, row: JobRow, job: Job, slot: int, attempt: int) -> Dispatch:
    """``job``, claimed as attempt ``attempt``, as the next job of busy ``slot``."""
    return Dispatch(job=job, slot=slot, gpu_ids=st.running[slot].gpu_ids,
                    name=job.name or st.layout.folder_name(job.index), attempt=attempt,
                    source_pos=row.source_pos, ident=row.ident, ahead=True)


def last_key(st: RunState) -> Optional[tuple]:
    """The run order (priority, then number) of the last reserved job."""
    if not st.reserve:
        return None
    job = st.reserve[-1][1]
    return (-job.priority, job.index)


def give_back(st: RunState) -> None:
    """Every reserved job queued again as before its claim, and put back at the head of
    the ready list, where it was taken from, with the row it was claimed with (not the
    queue read again: 64 rows and their jobs, half a millisecond, on every turn that
    gives the reserve back). The list is read again instead when it is empty (it then
    says nothing of the queue: a job given back meanwhile is not in it) or when a job
    there sorts before one of them (a higher priority, a job given back)."""
    if not st.reserve:
        return
    for row, job, _ in st.reserve:
        st.store.unhand(row.id)
    st.ahead += len(st.reserve)
    entries = [(row, job) for row, job, _ in st.reserve]
    last = last_key(st)
    st.reserve.clear()
    head = st.ready[0][1] if st.ready else None
    if head is None or last is None or (-head.priority, head.index) < last:
        st.ready.clear()
        return
    for entry in reversed(entries):
        st.ready.insert(0, entry)


def on_tick(st: RunState) -> None:
    """The tick: the reserve goes back (requests from other shells see no job claimed
    ahead), smaller if nothing was taken from it since the last tick."""
    if st.reserve and not st.reserve_used:
        st.reserve_size //= 2
    st.reserve_used = 0
    give_back(st)
