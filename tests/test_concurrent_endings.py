"""Two writers ending one attempt at the same moment (the slot that ran it and a runner
recording it as lost, or two runners): each holds the folder's writer lock, so the
attempt is ended once, with one marker, and nothing is moved aside for it.

Real processes (``multiprocessing``, forked), released together by a barrier, many
rounds: without the lock the two endings interleave and leave two markers (or a second
ending of the same attempt beside the first)."""
import multiprocessing
import os
import re

import pytest

from hog.backends.attempt import Attempt
from hog.messages import Dispatch
from hog.model import Job, Status
from hog.state.jobdir import Layout

ROUNDS = 25


def dispatch(index):
    return Dispatch(job=Job(index=index, command="true"), slot=1, gpu_ids=(),
                    name=f"job_{index}", attempt=1)


def _lost(root, index, barrier):
    """A runner that finds the slot gone: the attempt recorded as interrupted."""
    barrier.wait()
    Attempt.reopen(Layout(root), dispatch(index), pid=4242).ended_unrun(
        Status.INTERRUPTED, "its slot died")


def _live(root, index, barrier):
    """The slot that ran the job: it opened the attempt, and ends it as it succeeded."""
    a = Attempt.open(Layout(root), dispatch(index))
    a.started(4242, 1.0)
    barrier.wait()
    a.finished(Status.SUCCEEDED, 0, None, 2.0)


def _started_then_gone(root, index):
    a = Attempt.open(Layout(root), dispatch(index))
    a.started(4242, 1.0)
    a.release()             # (its writer died: the lock goes with it)
    a.folder.close()


def _race(tmp_path, writers):
    ctx = multiprocessing.get_context("fork")
    root = str(tmp_path)
    for index in range(ROUNDS):
        if writers[0] is _lost:
            _started_then_gone(root, index)
        barrier = ctx.Barrier(len(writers))
        procs = [ctx.Process(target=w, args=(root, index, barrier)) for w in writers]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
    return [sorted(os.listdir(tmp_path / f"job_{i}")) for i in range(ROUNDS)]


@pytest.mark.parametrize("writers", [(_lost, _lost), (_live, _lost)],
                         ids=["two-runners-record-it-lost", "its-slot-and-a-runner"])
def test_two_writers_ending_one_attempt_at_once_leave_exactly_one_marker(tmp_path, writers):
    folders = _race(tmp_path, writers)
    for names in folders:
        assert sum(n in ("SUCCESS", "FAILURE") for n in names) == 1, names
        assert not [n for n in names if re.search(r"\.\d+(\.|$)", n)], \
            names           # nothing moved aside: the attempt was ended once
    if writers[0] is _live:     # the slot holds the lock: its ending is the one
        assert all("SUCCESS" in names for names in folders)
