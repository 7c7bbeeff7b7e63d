"""The store's roles over one connection: the runner's and the verbs' ``Store``, the
views' read-only ``SweepReader``, and the mailbox where a verb in one shell and a
runner in another meet.

Real SQLite files in a temporary directory; no hog process is started.
"""
import os
import sqlite3

import pytest

from hog.errors import UsageError
from hog.model import Job, Status
from hog.state.reading import SweepReader, open_sweep
from hog.state.store import Store


def a_sweep(root) -> str:
    """A sweep with three queued jobs and this process registered as its runner."""
    state_dir = os.path.join(str(root), ".hog")
    store = Store(state_dir)
    with store.transaction():
        store.set_meta("prefix", "job_")
        store.register_runner("0")
    store.ingest([Job(index=i, command=f"echo {i}", name=f"j{i}") for i in range(3)],
                 resume=False)
    store.close()
    return state_dir


def test_a_sweep_reader_reads_what_the_store_wrote(tmp_path):
    reader = SweepReader(a_sweep(tmp_path))
    try:
        assert reader.meta("prefix") == "job_"
        assert reader.counts() == {"queued": 3}
        assert [r.name for r in reader.find("j1")] == ["j1"]
        assert [r.id for r in reader.find("job_2")] == [2]
        assert [r.pid for r in reader.live_runners()] == [os.getpid()]
        assert [r.id for r in reader.result_rows()] == [0, 1, 2]
    finally:
        reader.close()


def test_a_sweep_reader_has_no_write_methods_and_its_connection_refuses_writes(tmp_path):
    reader = SweepReader(a_sweep(tmp_path))
    try:
        for write in ("set_meta", "transaction", "batch", "ingest", "add", "claim", "ended",
                      "retry", "recover", "register_runner", "heartbeat", "request",
                      "request_gpus", "take_gpus_request", "cancel"):
            assert not hasattr(reader, write), write
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.db.execute("UPDATE jobs SET note = 'written by a view'")
    finally:
        reader.close()


def test_opening_a_directory_without_a_sweep_for_reading_says_so_and_creates_nothing(
        tmp_path):
    with pytest.raises(UsageError, match="no such directory"):
        open_sweep(str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="no hog sweep here"):
        open_sweep(str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_the_store_is_one_connection_that_is_also_a_reader(tmp_path):
    store = Store(a_sweep(tmp_path))
    try:
        assert isinstance(store, SweepReader)
        runner = store.live_runners()[0].id
        with store.batch():                      # a job's claim and a heartbeat: one commit
            assert store.claim(0, 0, runner, 0, "0") == 1
            store.heartbeat(runner)
            assert store.db.in_transaction
        assert not store.db.in_transaction
        assert store.counts() == {"queued": 2, "running": 1}
    finally:
        store.close()


def test_a_verbs_requests_reach_the_runner_through_the_store_only(tmp_path):
    state_dir = a_sweep(tmp_path)
    runner_side, verb_side = Store(state_dir), Store(state_dir)
    try:
        runner = runner_side.live_runners()[0].id
        assert runner_side.claim(0, 0, runner, 0, "0") == 1
        seen = runner_side.data_version()

        assert verb_side.cancel(0) == "stopping"          # hog kill 0 (running)
        assert verb_side.cancel(1) == "cancelled"         # hog kill 1 (queued)
        verb_side.request_gpus(runner, "0,1")             # hog gpus DIR 0,1
        assert verb_side.request("drain") == 1            # hog stop

        assert runner_side.data_version() != seen         # what the runner's tick looks at
        assert runner_side.cancel_requested(runner) == [0]
        assert runner_side.pending_request(runner) == "drain"
        assert runner_side.take_gpus_request(runner) == "0,1"
        assert runner_side.take_gpus_request(runner) is None      # taken once
        runner_side.ended(0, Status.CANCELLED, None, "SIGTERM", 1.0, 2.0)
        assert runner_side.cancel_requested(runner) == []
    finally:
        runner_side.close()
        verb_side.close()
