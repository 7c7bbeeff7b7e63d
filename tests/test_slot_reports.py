"""When a slot tells the runner that a job started (issue 11): a job that starts alone
(nothing ended just before it) has its ``Started`` sent with the slot's next message,
its ``Ended`` if it is short, so the runner hears start and end in one wake-up; a job
that runs on is reported by itself within ``REPORT_S``. The real slot process (forked,
so it takes the ``REPORT_S`` the test sets), real bash jobs. A slot killed before it
reported its job's start leaves nothing running: the job is found by its INFO."""
import os
import signal
import time

import pytest

import hog.backends.handoff as handoff
from hog.messages import Ended, SlotLost, Started
from hog.model import Status
from hog.state.jobread import read_info
from tests.harness import pid_alive, wait_for
from tests.slot_support import dispatch, ended, start_slot


def reads_until(backend, done, timeout: float = 20.0):
    """What the slot sent, read by read (one list per wake-up of the runner)."""
    conn, reads = backend.conns[0], []
    deadline = time.monotonic() + timeout
    while not done([e for read in reads for e in read]):
        assert conn.poll(max(0.0, deadline - time.monotonic())), f"no more events: {reads}"
        reads.append(backend.receive(conn))
    return reads


@pytest.fixture
def slot_with(tmp_path, monkeypatch):
    made = []

    def make(report_s: float):
        monkeypatch.setattr(handoff, "REPORT_S", report_s)  # (the slot is forked: it
        backend = start_slot(str(tmp_path / "out"))        # inherits this)
        made.append(backend)
        return backend
    yield make
    for backend in made:
        pids = [p.pid for p in backend.procs.values()]
        backend.shutdown([])
        assert not any(pid_alive(pid) for pid in pids)


def test_a_short_job_started_alone_is_reported_with_its_end_in_one_message(slot_with):
    slot = slot_with(30.0)
    slot.submit(dispatch(0, "true"))
    reads = reads_until(slot, ended(0))
    assert [[type(e) for e in read] for read in reads] == [[Started, Ended]]
    started, end = reads[0]
    assert started.index == 0 and started.pid == end.outcome.pid
    assert end.outcome.status is Status.SUCCEEDED


def test_a_job_that_runs_on_is_reported_started_within_report_s(slot_with, tmp_path):
    slot = slot_with(0.2)
    gate = tmp_path / "go"
    sent = time.monotonic()
    slot.submit(dispatch(0, f"while [ ! -e {gate} ]; do sleep 0.02; done"))
    reads = reads_until(slot, lambda events: events)
    took = time.monotonic() - sent
    assert [[type(e) for e in read] for read in reads] == [[Started]]
    assert 0.2 <= took < 5.0        # held back its REPORT_S, no longer than it must
    gate.touch()
    reads = reads_until(slot, ended(0))
    assert [type(e) for read in reads for e in read] == [Ended]


def test_a_slot_killed_before_it_reported_its_job_started_takes_the_job_with_it(
        slot_with, tmp_path):
    slot = slot_with(30.0)          # (the Started is held back all along)
    slot.submit(dispatch(0, "sleep 30"))
    wait_for(lambda: read_info(slot.layout, 0).get("status") == "running",
             what="job 0 running, by its INFO")
    job = read_info(slot.layout, 0)["pid"]
    assert pid_alive(job) and not slot.conns[0].poll(0)     # nothing heard of it yet
    os.kill(slot.procs[0].pid, signal.SIGKILL)
    events = reads_until(slot, lambda events: events)
    assert [type(e) for read in events for e in read] == [SlotLost]
    wait_for(lambda: not pid_alive(job), timeout=5, what="its job ended with it")
