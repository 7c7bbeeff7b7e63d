"""Jobs this runner cannot run, left queued for another runner: the rule of
``engine/eligibility`` applied with the store's active runners, what each job waits
for written for ``hog status``, and the same question asked again only when the set
of runners changes (one joins or ends, ``hog gpus`` changes one): never every turn.
"""
from typing import List, Tuple

from hog.engine.eligibility import Peer, decide, runner_set, split
from hog.engine.state import RunState
from hog.model import Job
from hog.state.rows import JobRow


def _peers(st: RunState) -> Tuple[Peer, List[Peer]]:
    rows = st.store.live_runners()
    me, others = split(rows, st.runner_id)
    if me is None:      # (not registered: a test's runner) as its config says
        me = Peer(st.runner_id, 0, tuple(st.cfg.slots), st.cfg.keep_alive, None)
    st.runner_set = runner_set(rows)
    return me, list(others)


def leave(st: RunState, row: JobRow, job: Job, what: str) -> bool:
    """``job`` cannot run here (``what`` says why): True if it stays queued for another
    runner (said once per change of what it waits for), False if it is to end now."""
    me, others = _peers(st)
    waits = decide(job, me, others)
    if waits is None:
        st.left.pop(row.id, None)
        return False
    if st.left.get(row.id) != waits:
        st.left[row.id] = waits
        st.store.set_waiting(row.id, waits)
        st.display.message(f"{what}; it {waits}")
    return True


def runners_changed(st: RunState) -> None:
    """On a tick whose store changed: if the active runners changed, the jobs left to
    others are looked at again (they come back to the ready list)."""
    if not st.left:
        return
    now = runner_set(st.store.live_runners())
    if now != st.runner_set:
        st.runner_set = now
        st.not_here.difference_update(st.left)


def last_of_them(st: RunState) -> List[Tuple[JobRow, Job]]:
    """This runner is finishing: the jobs it left that no other active runner might
    run (none could, none is --keep-alive), for it to end unschedulable."""
    me, others = _peers(st)
    ending = []
    for job_id in sorted(st.left):
        row = st.store.row(job_id)
        if row is None or row.status != "queued":
            st.left.pop(job_id)
            continue
        job = row.job()
        if decide(job, me, others, finishing=True) is None:
            ending.append((row, job))
    return ending
