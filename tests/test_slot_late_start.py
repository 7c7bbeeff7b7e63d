"""A slot process (the real consumer, forked by ``LocalBackend``) and a job handed to it
ahead that reaches it only after its job ended: after a success it starts it as it
comes, after a failure it gives it back, and a ``Withdraw`` already waiting behind it
takes it back. Real bash jobs; the slot is paused with SIGSTOP where two messages must
be in its pipe together."""
import os
import signal

import pytest

from hog.backends.local import LocalBackend
from hog.messages import Ended, Started, Withdrawn
from hog.model import Status
from tests.harness import pid_alive
from tests.slot_support import dispatch, ended, events_until, start_slot


@pytest.fixture
def slot(tmp_path):
    backend = start_slot(str(tmp_path / "out"))
    pid = backend_pid(backend)
    yield backend
    backend.shutdown([])
    assert not pid_alive(pid)       # the slot process is gone, and reaped


def backend_pid(backend: LocalBackend) -> int:
    return backend.procs[0].pid


def test_a_handed_job_that_comes_after_a_success_starts_as_it_comes(slot):
    slot.submit(dispatch(0, "true"))
    first = events_until(slot, ended(0))
    assert first[-1].outcome.status is Status.SUCCEEDED and not first[-1].started_next
    slot.submit(dispatch(1, "echo late", ahead=True))     # the slot is idle by now
    events = events_until(slot, ended(1))
    assert [type(e) for e in events] == [Started, Ended]
    assert events[0].index == 1 and events[1].outcome.status is Status.SUCCEEDED
    with open(slot.layout.out_path(1)) as f:
        assert f.read() == "late\n"


def test_a_handed_job_that_comes_after_a_failure_is_given_back_unstarted(slot):
    slot.submit(dispatch(0, "exit 3"))
    assert events_until(slot, ended(0))[-1].outcome.status is Status.FAILED
    slot.submit(dispatch(1, "echo never", ahead=True))
    events = events_until(slot, lambda ev: ev)
    assert events == [Withdrawn(0, 1)]
    assert not os.path.exists(slot.layout.folder(1))


def test_a_withdraw_waiting_behind_a_late_handed_job_takes_it_back(slot):
    slot.submit(dispatch(0, "true"))
    events_until(slot, ended(0))
    os.kill(backend_pid(slot), signal.SIGSTOP)        # both messages in its pipe at once
    try:
        slot.submit(dispatch(1, "echo never", ahead=True))
        slot.withdraw(0, 1)
    finally:
        os.kill(backend_pid(slot), signal.SIGCONT)
    assert events_until(slot, lambda ev: ev) == [Withdrawn(0, 1)]
    assert not os.path.exists(slot.layout.folder(1))
    slot.submit(dispatch(2, "true"))                  # and the slot goes on as before
    assert events_until(slot, ended(2))[-1].outcome.status is Status.SUCCEEDED
