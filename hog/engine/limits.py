"""Sweep-wide limits: ``--timeout`` and ``--retries`` as every job's defaults, and
``--max-failures N`` (after N failed jobs, start nothing new).

A job's own ``timeout`` wins over ``--timeout``, and its own ``retries`` over
``--retries`` (``retries=0`` included: a job opts out of a sweep-wide ``--retries``;
a job that says nothing takes it, else none). The defaults apply to the job as
this runner runs it (the store keeps what the source said), so they cover jobs of
the source, of ``hog add`` and of an earlier run alike.

Failures are the final outcomes of this runner's jobs that count as one
(``Status.counts_as_failure``: failed, timeout, interrupted, skipped,
unschedulable), an attempt that is retried not counted. Reaching N drains the runner
as ``hog stop`` does: running jobs finish, nothing new starts, the summary says why,
and the exit code is 1.
"""
from typing import Any, Dict

from hog.engine import control
from hog.engine.state import RunState
from hog.model import Job, evolve


def with_defaults(st: RunState, job: Job) -> Job:
    """``job`` as this runner runs it: the sweep-wide timeout and retries where it sets
    none of its own."""
    changes: Dict[str, Any] = {}
    if job.timeout is None and st.cfg.timeout is not None:
        changes["timeout"] = st.cfg.timeout
    if job.retries is None:
        changes["retries"] = st.cfg.retries or 0
    return evolve(job, **changes) if changes else job


def check_failures(st: RunState) -> None:
    """After a job's final outcome is counted: drain once ``--max-failures`` is reached."""
    limit = st.cfg.max_failures
    if limit is None or st.stopping or st.progress.failed < limit:
        return
    reason = (f"stopped by --max-failures {limit}: {st.progress.failed} job(s) failed; "
              f"no new jobs were started")
    control.drain(st, reason)
    st.display.message(f"--max-failures {limit}: {st.progress.failed} job(s) failed; "
                       f"starting no new jobs, waiting for {len(st.running)} running "
                       f"job(s) to finish")
