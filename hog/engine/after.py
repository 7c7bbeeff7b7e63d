"""A job's ``after`` dependencies: met (every job named succeeded), still to wait for,
or failed (why the job will not run: a dependency ended otherwise, names no job, or
the jobs wait on each other in a cycle)."""
from typing import List, Sequence, Set

from hog.engine.state import RunState
from hog.model import Job, Status


def dependencies(st: RunState, job: Job) -> str:
    """'ok' when every job named in ``after`` succeeded, 'wait' while one may still,
    else why this job will not run."""
    waiting = False
    for name in job.after:
        rows = [r for r in st.store.by_name(name) if r.in_source]
        if not rows:
            if source_may_bring_more(st):    # a stream may name it further on
                waiting = True
                continue
            return f"it is after {name!r}, but no job is named {name!r}"
        for r in rows:
            if r.status == "succeeded":
                continue
            if not Status(r.status).finished:
                waiting = True
            else:
                return f"its dependency {name} ended {r.status}"
    if waiting and job.name:
        cycle = dependency_cycle(st, job)
        if cycle:
            return f"its dependencies form a cycle: {' -> '.join(cycle)}"
    return "wait" if waiting else "ok"


def source_may_bring_more(st: RunState) -> bool:
    """Can jobs still arrive in the store from this sweep's source: this runner is
    reading it, or (joining) the runner that reads it has not finished?"""
    if not st.source_done:
        return True
    return st.joiner and st.store.meta("ingest_done") != "1"


def dependency_cycle(st: RunState, job: Job) -> List[str]:
    """The names of a cycle of queued jobs that wait on each other and on ``job`` (a
    Python source or ``hog add`` can make one; files are checked when read), or []."""
    def visit(names: Sequence[str], path: List[str], seen: Set[str]) -> List[str]:
        for name in names:
            if name == job.name:
                return path + [name]
            if name in seen:
                continue
            seen.add(name)
            for r in st.store.by_name(name):
                if r.status == Status.QUEUED.value:
                    found = visit(r.job().after, path + [name], seen)
                    if found:
                        return found
        return []
    assert job.name is not None
    return visit(job.after, [job.name], set())
