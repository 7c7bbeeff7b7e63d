"""Attempts run again without using up a retry: those of a quarantined GPU
(``engine/health.py``) and a GPU out-of-memory failure of a job that shared its GPU
(``state/oom.py``), run again once alone on a GPU.

``placed`` notes which attempts share a GPU and gives a rerun's ``Dispatch`` its
reason (INFO's ``rerun`` and ``oom_retry``); ``started`` and ``after_end`` tell the
health rule; ``after_end`` says whether an attempt that just ended runs again for
free (the reason, or ''). ``counted`` is an attempt's number less its free reruns,
what ``retries`` is compared with. ``release`` (``hog gpus DIR --release GPU``) lets
a quarantined GPU serve again. Only the local scheduler places jobs away from a GPU
(``LocalCapacity``); with Ray, nothing here acts.

The free reruns are the runner's own (in memory): a job's attempts counted by a later
runner count every attempt, as before.
"""
from dataclasses import replace
from typing import List, cast

from hog.backends.base import LocalCapacity, implements
from hog.engine.health import Verdict
from hog.engine.state import RunState
from hog.messages import Dispatch
from hog.model import Outcome, Status
from hog.state.oom import err_tail, oom_error


def placed(st: RunState, d: Dispatch) -> Dispatch:
    """``d`` is about to be sent: note the attempts sharing a GPU with it, and give it
    the reason it runs again, if it does."""
    mine = set(d.gpu_ids)
    for other in st.running.values():
        if mine & set(other.gpu_ids):
            st.shared.update((other.job.index, d.job.index))
    why = st.reruns.pop(d.job.index, "")
    alone = d.job.index in st.oom_alone
    st.oom_alone.discard(d.job.index)
    return replace(d, rerun=why, oom_retry=alone) if why else d


def started(st: RunState, index: int, gpus: List[str]) -> None:
    st.health.started(index, [g for g in gpus if g])


def counted(st: RunState, outcome: Outcome) -> int:
    """The attempt's number as retries count it (its free reruns left out)."""
    return outcome.attempt - st.free.get(outcome.index, 0)


def after_end(st: RunState, d: Dispatch, outcome: Outcome) -> str:
    """Why the attempt that just ended runs again without using a retry, or ''."""
    index = outcome.index
    shared = index in st.shared
    st.shared.discard(index)
    if not implements(st.sched, LocalCapacity):     # (asked once: isinstance on a
        return ""                                   # Protocol costs 25 us a job)
    oom = ""
    if outcome.status is Status.FAILED and shared:
        oom = oom_error(err_tail(st.layout.err_path(index))) or ""
    # an out-of-memory failure beside another job says nothing about the GPU's health
    verdict = st.health.ended(index, outcome.attempt, Status.INTERRUPTED if oom
                              else outcome.status)
    why = ""
    if verdict is not None:
        why = judged(st, verdict, index)
    if not why and oom and st.cfg.oom_retry and index not in st.oom_done:
        st.oom_done.add(index)
        cast(LocalCapacity, st.sched).want_alone(index)
        st.oom_alone.add(index)
        why = f"rerun: out of GPU memory on GPU {','.join(d.gpu_ids)} beside another job " \
              f"({oom}); alone on a GPU now"
    if why:
        st.free[index] = st.free.get(index, 0) + 1
        st.reruns[index] = why
    return why


def judged(st: RunState, verdict: Verdict, index: int) -> str:
    """A GPU quarantined (its streak's other attempts run again too) or let back; the
    reason the attempt ``index`` that just ended runs again, or ''."""
    if verdict.new:
        show(st, verdict)
    if not verdict.quarantined:
        return ""
    why = f"rerun: GPU {verdict.gpu} quarantined"
    mine = ""
    for job, attempt in verdict.reruns:
        if job == index:
            mine = why
            continue
        row = st.store.row(job)
        if row is None or row.attempt < attempt:
            continue
        if row.status == Status.FAILED.value and row.attempt == attempt:
            if st.store.retry([job], note=why):     # it had ended for good: run it again
                unrecord(st, job)
                st.reruns[job] = why
                st.ahead += 1
                st.ready.clear()
            else:
                continue
        # (queued or running again: that retry is given back)
        st.free[job] = st.free.get(job, 0) + 1
    return mine


def show(st: RunState, verdict: Verdict) -> None:
    assert isinstance(st.sched, LocalCapacity)
    st.sched.set_excluded(st.health.excluded())
    st.store.set_quarantined(st.runner_id, {g: st.health.reason(g)
                                            for g in sorted(st.health.excluded())})
    st.progress.quarantine = "; ".join(st.health.reason(g)
                                       for g in sorted(st.health.excluded()))
    st.display.message(verdict.why)
    if st.hooks is not None:
        from hog.engine.hooks import gpu_variables  # the hooks module: only with hooks
        st.hooks.job_ended(f"GPU {verdict.gpu}",
                           gpu_variables(verdict.gpu, verdict.quarantined, verdict.why,
                                         st.layout, st.progress))


def release(st: RunState, gpu: str) -> None:
    """``hog gpus DIR --release GPU``: ``gpu`` serves again."""
    if not st.health.release(gpu):
        st.display.message(f"hog gpus --release {gpu}: GPU {gpu} is not quarantined")
        return
    show(st, Verdict(gpu, False, f"GPU {gpu} back in service (hog gpus --release)"))


def unrecord(st: RunState, index: int) -> None:
    """A failure already counted that now runs again: it no longer counts as failed."""
    p = st.progress
    p.failed = max(0, p.failed - 1)
    p.failure_count = max(0, p.failure_count - 1)
    p.by_status["failed"] = max(0, p.by_status.get("failed", 0) - 1)
    if not p.by_status["failed"]:
        del p.by_status["failed"]
    p.failures[:] = [o for o in p.failures if o.index != index]
    kept = [o for o in p.recent_failures if o.index != index]
    p.recent_failures.clear()
    p.recent_failures.extend(kept)
