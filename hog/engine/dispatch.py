"""From the queue to the slots: the ready list (queued jobs fetched from the store in
order), dependencies (``after``, judged by ``engine.after``), GPU memory totals,
claims, and sending the claimed jobs once the turn's transaction is committed.

``fill`` claims jobs while the scheduler finds room; each claim only records the
dispatch (``claimed``); ``send_claimed`` hands them to the backend after the commit.

Pre-dispatch (``predispatch``, local slots): each busy one-GPU slot is also handed its
next job, claimed as ``handed`` in the same turn's transaction, so that the slot
spawns it the moment its current job ends, before recording that one; the
runner's round trip is no longer between two jobs. Once ``CALM`` jobs in a row
succeeded, a slot whose last job was short (under ``SHORT_S``) is handed ``DEEP``
jobs ahead, started in turn: it then reports several jobs at once
(``backends.handoff``), one turn of the runner for them all. Only one-GPU jobs
without memory or named resources are handed ahead, in queue order, stopping at the
first queued job that is not such a job (a multi-GPU job waiting at the head keeps
its reservation: the slots it waits for are not promised further). A handed job is
taken back (``withdraw``; the slot answers ``Withdrawn`` unless it already started
it) when the run stops (drain or kill), when it is cancelled, when its slot retires
(``hog gpus``) or its GPU is taken by others, when a slot it could run on is free
(unless it is handed deep behind a job that has run under ``SHORT_S``), when the
disk refuses writes, when
another runner works on the queue (jobs are not promised to this one's slots then),
and when a queued job that sorts before it (a higher priority added later) is
waiting: then it is queued again as it was, its attempt not counted. Ray slots are
not handed jobs ahead. The run loop also claims the jobs after a handed one ahead,
in blocks (``engine.reserve``).
"""
import time
from typing import List, Optional, Tuple, cast

from hog.backends.base import LocalCapacity, PreDispatching, implements
from hog.engine import after, gpuwatch, limits, outcomes, reruns, reserve, writable
from hog.engine.progress import Running
from hog.engine.state import CALM, DEEP, READY_AHEAD, SHORT_S, RunState, handed_jobs
from hog.gpus.discovery import query_gpus
from hog.messages import Dispatch
from hog.model import Job, Status
from hog.placement import MEMORY
from hog.sources import watch
from hog.state.store import JobRow


def learn_gpu_memory(st: RunState) -> None:
    """GPU memory totals from nvidia-smi, asked once, when a job first needs them (what
    others hold of them is the monitor's, refreshed on the tick: ``set_foreign_memory``)."""
    st.memory_known = True
    sched = st.sched
    if not isinstance(sched, LocalCapacity):    # Ray turns memory= jobs down
        return
    gpuwatch.look_now(st)       # (what others hold, before the first memory= job)
    seen = st.monitor.gpus if st.monitor is not None else []   # (NVML without nvidia-smi)
    for g in seen or query_gpus() or []:
        if g.memory_total_mib:
            for key in (g.index, g.uuid):
                if key in st.cfg.slots:
                    sched.set_gpu_memory(key, g.memory_total_mib * 2 ** 20)


def refill(st: RunState) -> None:
    skip = st.not_here
    rows = st.store.queued(READY_AHEAD + len(skip) + len(st.waiting_deps))
    st.ready.extend((r, limits.with_defaults(st, r.job())) for r in rows if r.id not in skip)


def fill(st: RunState) -> None:
    """Start queued jobs while there is room and the planner finds a place; hand busy
    slots their next job."""
    if st.stopping or st.others_running or not writable.may_start(st):
        for d in handed_jobs(st):       # (the disk refuses writes: nothing new starts)
            withdraw(st, d, "stop")
        reserve.give_back(st)
        return
    reclaim_for_free_slots(st)
    place(st)
    predispatch(st)


def reclaim_for_free_slots(st: RunState) -> None:
    """A slot is free and a job handed to a busy slot could run there: it is taken back
    (and placed again in its turn), not left waiting behind that slot's current job
    while later jobs take the free slot. Not while that job is a short one's successor
    that has run less than ``SHORT_S`` yet: the jobs handed behind it start within
    milliseconds (taking them back would cost more than it saves), and once it has run
    longer they are taken back as any other."""
    if not (st.next or st.reserve) or not st.sched.has_room() \
            or not implements(st.sched, LocalCapacity):
        return
    free_gpus = cast(LocalCapacity, st.sched).free_gpus()
    if not free_gpus:
        return
    reserve.give_back(st)       # (a free slot takes the queue's head, in order)
    now = time.time()
    for d in handed_jobs(st):
        if (not d.job.gpu_ids or free_gpus & set(d.job.gpu_ids)) and not _soon(st, d.slot, now):
            withdraw(st, d, "free")


def _soon(st: RunState, slot: int, now: float) -> bool:
    """Do the jobs handed to ``slot`` start soon? Slots are handed deep (``CALM``), its
    last job was short, and the one it runs now has run less than ``SHORT_S``."""
    running = st.progress.running.get(slot)
    return st.calm >= CALM and slot in st.short and running is not None \
        and now - running.started < SHORT_S


def _coming_back(st: RunState) -> Optional[Tuple[int, int]]:
    """The run order (priority, then number) of the first handed job being taken back
    to be queued again: no job after it is placed before it is back in the queue."""
    keys = [(-d.job.priority, d.job.index) for d in handed_jobs(st)
            if st.withdrawing.get(d.job.index, "cancel") != "cancel"]
    return min(keys) if keys else None


def place(st: RunState) -> None:
    local = implements(st.sched, LocalCapacity)
    while st.sched.has_room():
        if not st.ready:
            refill(st)
            if not st.ready:
                return
        if local and cast(LocalCapacity, st.sched).only_cpu_jobs_fit() \
                and not st.ready.cpu_jobs:
            return      # (only CPU slots are free: the usual case of a busy GPU box)
        first_back = _coming_back(st)
        entries = {job.index: (row, job) for row, job in st.ready
                   if first_back is None or (-job.priority, job.index) < first_back}
        if not entries:
            return
        placements = st.sched.schedule([job for _, job in entries.values()],
                                       lambda job: may_start(st, *entries[job.index]))
        if not placements:
            return
        if st.stopping:     # an unschedulable job just reached --max_failures: start none
            for p in placements:
                st.sched.release(p.job_id, ran=False)
            return
        by_id = {job.index: (row, job) for row, job in st.ready}
        for p in placements:
            row, job = by_id[p.job_id]
            st.ready.remove((row, job))
            gpus = ",".join(p.gpu_ids)
            attempt = st.store.claim(row.id, row.attempt, st.runner_id, p.slot, gpus)
            st.ahead = max(0, st.ahead - 1)
            if attempt is None:     # another runner took it, or it was cancelled
                st.sched.release(p.job_id, ran=False)
                continue
            if st.cfg.source is not None and st.cfg.source.kind == "watch" \
                    and watch.is_watched(job) and not watch.start(job):
                st.sched.release(p.job_id, ran=False)
                why = "its script left to_run/ before it started"
                outcomes.end_unrun(st, row, job, Status.CANCELLED, why, f"cancelled: {why}")
                continue
            name = job.name or st.layout.folder_name(job.index)
            dispatch(st, reruns.placed(st, Dispatch(
                job=job, slot=p.slot, gpu_ids=p.gpu_ids, name=name, attempt=attempt,
                source_pos=row.source_pos, ident=row.ident)))


# ------------------------------------------------------------ pre-dispatch
def handable(job: Job) -> bool:
    """Can ``job`` be handed ahead to a busy one-GPU slot (takes just that slot)?"""
    return job.gpus == 1 and not job.resources


def predispatch(st: RunState) -> None:
    """Hand each busy one-GPU slot its next job (see the module's docstring)."""
    if not st.running or not implements(st.backend, PreDispatching) \
            or not implements(st.sched, LocalCapacity) \
            or (st.cfg.source is not None and st.cfg.source.kind == "watch"):
        return      # (a watched script moves to running/ as it starts: never ahead)
    sched = cast(LocalCapacity, st.sched)
    if st.alone_at != st.next_tick:     # asked once a tick: other runners take jobs too
        st.alone_at = st.next_tick
        st.alone = len(st.store.live_runners()) <= 1
    if not st.alone:
        for d in handed_jobs(st):
            withdraw(st, d, "peers")
        reserve.give_back(st)
        return
    for d in handed_jobs(st):
        if not sched.can_hand(d.slot):      # retiring (hog gpus), or its GPU is taken
            withdraw(st, d, "slot")
    reclaim_for_free_slots(st)
    free = wanting(st)
    if not st.ready:
        refill(st)
    withdraw_overtaken(st, len(free))
    while free and st.reserve:          # claimed ahead by an earlier turn: no claim now
        taken = reserve.take(st, free)
        if taken is None:
            break
        free.remove(taken.slot)
        st.next.setdefault(taken.slot, []).append(taken)
        st.claimed.append(taken)
    if free and not st.ready:
        refill(st)
    claimed = 0
    for row, job in list(st.ready):
        if not free:
            break
        if job.index in st.waiting_deps:
            continue
        if not handable(job) or job.index in st.reruns or job.index in st.oom_alone:
            return          # it keeps its place at the head: nothing is promised past it
                            # (a job run again is placed afresh: alone, or elsewhere)
        target = reserve.slot_for(st, job, free)
        if target is None:
            break
        if not may_start(st, row, job):
            continue
        st.ready.remove((row, job))
        attempt = st.store.claim(row.id, row.attempt, st.runner_id, target,
                                 st.running[target].gpu_ids[0], handed=True)
        if attempt is None:         # (a handed job counts as ahead until it starts)
            st.ahead = max(0, st.ahead - 1)
            continue
        claimed += 1
        free.remove(target)
        d = reserve.handed(st, row, job, target, attempt)
        st.next.setdefault(target, []).append(d)
        st.claimed.append(d)
    if claimed:
        reserve.ran_dry(st)
        claim_ahead(st)


def claim_ahead(st: RunState) -> None:
    """This turn claims (it commits): the next handable jobs of the queue's head are
    claimed too, for the reserve (``engine.reserve``), in order, up to its size; the
    first job that is not such a job ends it."""
    for row, job in list(st.ready):
        if len(st.reserve) >= reserve.size(st):
            return
        if job.index in st.waiting_deps or not handable(job) or job.gpu_ids \
                or job.index in st.reruns or job.index in st.oom_alone \
                or not may_start(st, row, job):
            return
        st.ready.remove((row, job))
        attempt = st.store.claim(row.id, row.attempt, st.runner_id, None, None, handed=True)
        if attempt is None:
            st.ahead = max(0, st.ahead - 1)
            continue
        reserve.add(st, row, job, attempt)


def withdraw_overtaken(st: RunState, room: int = 0) -> None:
    """A queued job that sorts before a handed one (priority, then number): the
    worst handed ones are taken back, one for each such job beyond the ``room`` the
    busy slots have for more jobs ahead (those are handed it this turn, after the
    ones they hold, as the ones taken back would have been)."""
    last = reserve.last_key(st)
    for _, job in st.ready:     # (the reserve: given back if a queued job sorts within it)
        if job.index in st.waiting_deps or job.index in st.not_here:
            continue
        if last is not None and (-job.priority, job.index) < last:
            reserve.give_back(st)
        break
    handed = sorted(((-d.job.priority, d.job.index), i, d)
                    for i, d in enumerate(handed_jobs(st))
                    if d.job.index not in st.withdrawing)
    for _, job in st.ready:
        if not handed:
            return
        if job.index in st.waiting_deps or job.index in st.not_here:
            continue
        if (-job.priority, job.index) > handed[-1][0]:
            return
        if room > 0:
            room -= 1
            continue
        withdraw(st, handed.pop()[2], "overtaken")


def wanting(st: RunState) -> List[int]:
    """The busy one-GPU slots that take a job ahead now, each once for every job it
    takes (one, or ``DEEP`` after a short job once ``CALM`` jobs in a row succeeded,
    less those it holds), in rounds: every such slot its first before any its second."""
    sched = cast(LocalCapacity, st.sched)
    deep = DEEP if st.calm >= CALM else 1
    want = {slot: (deep if slot in st.short else 1) - len(st.next.get(slot, ()))
            for slot, d in st.running.items()
            if len(d.gpu_ids) == 1 and slot >= 0 and sched.can_hand(slot)}
    free: List[int] = []
    for n in range(max(want.values(), default=0)):
        free += [slot for slot, k in want.items() if k > n]
    return free


def withdraw(st: RunState, d: Dispatch, why: str) -> None:
    """Take back ``d``, a job handed ahead to its slot (``why``: "cancel" cancels it,
    anything else queues it again), once the slot says it had not started it."""
    slot, index = d.slot, d.job.index
    if index in st.withdrawing:
        if why == "cancel":
            st.withdrawing[index] = why
        return
    st.withdrawing[index] = why
    if isinstance(st.backend, PreDispatching):
        st.backend.withdraw(slot, index)


def may_start(st: RunState, row: JobRow, job: Job) -> bool:
    """Asked by the scheduler about a job it would consider (lazily: not once there
    is no room left for it): not impossible here, dependencies met."""
    if job.resources and not st.memory_known and MEMORY in dict(job.resources):
        learn_gpu_memory(st)
    return startable(st, row, job)


def startable(st: RunState, row: JobRow, job: Job) -> bool:
    """False (and the job dealt with) if it can never run here or its dependencies
    failed; False while its dependencies are still running."""
    why = st.sched.never_fits(job)
    if why:
        st.ready.remove((row, job))
        outcomes.cannot_run_here(st, row, job, job.name or st.layout.folder_name(job.index),
                                 why)
        return False
    if job.after:
        state = after.dependencies(st, job)
        if state == "wait":
            st.waiting_deps.add(job.index)
            return False
        st.waiting_deps.discard(job.index)
        if state != "ok":
            st.ready.remove((row, job))
            outcomes.skip(st, row, job, state)
            return False
    return True


def dispatch(st: RunState, d: Dispatch) -> None:
    if d.slot >= len(st.progress.slots):  # Ray: slots are taken as jobs are handed over
        st.progress.slots = st.sched.slot_gpus()
    st.running[d.slot] = d
    st.registry.update(len(st.running))
    st.started_any = True
    st.progress.running[d.slot] = Running(d.name, ",".join(d.gpu_ids), time.time(),
                                          d.job.index)
    st.claimed.append(d)


def send_claimed(st: RunState) -> None:
    """Send the jobs claimed this turn to their slots (the claims are committed)."""
    for d in st.claimed:
        st.backend.submit(d)
    st.claimed.clear()
