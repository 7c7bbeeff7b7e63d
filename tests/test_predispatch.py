"""Pre-dispatch (issue 11): a busy slot is handed its next job while the current one
runs, claimed as ``handed`` in the same transaction, and starts it the moment the
current one ends. Cancel, drain, kill, ``hog gpus``, priorities, a multi-GPU job's
reservation and crash recovery keep their meaning: a handed job that has not started
is cancellable and recoverable like a queued one and is never shown as running.

Stepped engine tests over ``HandingBackend`` (tests/inline_backend.py), then real
``python -m hog`` runs.
"""
import os
import signal
import time
from contextlib import contextmanager
from typing import Iterator

import pytest

from hog.backends.factory import local_scheduler
from hog.engine import control
from hog.messages import StopHow
from hog.model import Job, Status
from hog.state.jobdir import Layout
from hog.state.store import Store
from hog.views.status import status_data, status_lines
from tests.harness import (
    counts_of,
    job_dir,
    job_file,
    job_rows,
    pid_alive,
    run_hog,
    start_hog,
    status_counts,
    wait_for,
)
from tests.inline_backend import HandingBackend
from tests.test_engine_loop import Engine, Engines


class HandingEngines(Engines):
    def _make_backend(self, config, ctx, layout: Layout, flags):
        sched = local_scheduler(config)
        backend = HandingBackend(layout, sorted(sched.slots), config.slots)
        self.backends.append(backend)
        return backend, sched


def handing_engines(tmp_path):
    """Stepped runners over ``HandingBackend``, each shut down by the end of the test."""
    made = HandingEngines(str(tmp_path / "out"))
    yield made
    for engine in list(made.live):
        made.finish(engine)


@pytest.fixture
def engines(tmp_path):
    yield from handing_engines(tmp_path)


def other_store(e: Engine) -> Store:
    return Store(e.st.layout.state_dir)


@contextmanager
def another_shell(e: Engine) -> Iterator[Store]:
    """The store as another shell opens it (``hog kill``, ``hog stop``, ``hog add``)."""
    store = other_store(e)
    try:
        yield store
    finally:
        store.close()


def started(e: Engine):
    return [d.job.index for d in e.backend.submitted]


def claims_of(e: Engine) -> list:
    """The ids of the jobs ``e`` claims from now on, in order (filled as it claims)."""
    claims: list = []
    claim = e.st.store.claim
    e.st.store.claim = lambda job_id, *a, **k: claims.append(job_id) or claim(job_id, *a, **k)
    return claims


def statuses(e: Engine):
    with another_shell(e) as store:
        rows = [store.row(i) for i in range(50)]
        return {r.id: r.status for r in rows if r is not None}


# ------------------------------------------------------------------- the hand-over
def test_a_busy_slot_is_handed_its_next_job_claimed_as_handed_not_running(engines):
    e = engines.make(["echo 0", "echo 1", "echo 2"])
    e.settle()
    assert started(e) == [0]
    assert e.backend.nexts[0][0].job.index == 1
    assert e.backend.committed == ["running", "handed"]     # committed before it was sent
    assert statuses(e) == {0: "running", 1: "handed", 2: "queued"}
    with another_shell(e) as store:
        data = status_data(store, e.st.cfg.output_dir)
        assert [r["id"] for r in data["running"]] == [0]
        assert "1 running" in status_lines(data, e.st.cfg.output_dir, "job_")[0]
        assert store.row(1).attempt == 1 and store.row(1).pid is None


def test_when_a_job_ends_its_slot_has_already_started_the_next_and_gets_another(engines):
    e = engines.make(["echo 0", "echo 1", "echo 2"])
    e.settle()
    e.backend.end_job(0)
    e.settle()
    assert started(e) == [0, 1]
    assert statuses(e) == {0: "succeeded", 1: "handed", 2: "handed"}
    e.tick()                        # (job 1's Started is stored on the tick)
    assert statuses(e) == {0: "succeeded", 1: "running", 2: "handed"}
    assert e.st.running[0].job.index == 1 and e.st.next[0][0].job.index == 2
    assert e.st.progress.running[0].index == 1      # what the display shows on that slot
    assert e.run_all()
    assert e.counts() == {"succeeded": 3}
    assert started(e) == [0, 1, 2]


def test_after_a_failure_the_handed_job_comes_back_and_the_runner_places_it_again(engines):
    e = engines.make(["exit 1", "echo 1", "echo 2"])
    e.settle()
    assert e.backend.nexts[0][0].job.index == 1
    e.backend.end_job(0, Status.FAILED)     # the slot gives job 1 back with the Ended
    e.settle()
    while e.backend.pending:
        e.settle()
    assert e.backend.withdrawals == []      # (the slot's own choice: nobody asked)
    assert statuses(e)[1] in ("running", "handed")
    assert e.run_all()
    assert e.counts() == {"failed": 1, "succeeded": 2}
    assert started(e) == [0, 1, 2]          # in queue order, each once


def test_a_handed_job_that_reaches_its_slot_after_a_success_starts_there_as_it_comes(engines):
    e = engines.make(["echo 0", "echo 1", "echo 2"])
    e.settle()
    claims = claims_of(e)
    d = e.backend.delay(0)                  # job 1 is still on its way when job 0 ends
    e.backend.end_job(0)                    # Ended says the next one was not started
    e.settle()
    # after a success the slot starts it as it comes: the runner counts it as the
    # slot's job (not queued again, not claimed again, not sent again), but its row
    # says 'handed' until it has started
    assert e.st.running[0].job.index == d.job.index and e.st.promoted == {0: d.job.index}
    assert statuses(e)[d.job.index] == "handed"
    assert [x.job.index for x in e.backend.submitted] == [0]
    assert claims == [2]                    # (job 2's, handed to follow job 1)
    e.backend.deliver(0)                    # job 1 starts; job 2 waits as its next
    e.settle()
    assert e.st.promoted == {}
    e.tick()                                # (its Started is stored with the next write)
    assert statuses(e) == {0: "succeeded", 1: "running", 2: "handed"}
    assert e.st.promoted == {} and e.backend.nexts[0][0].job.index == 2
    assert e.run_all()
    assert e.counts() == {"succeeded": 3}
    assert started(e) == [0, 1, 2]


def test_a_handed_job_that_reaches_its_slot_after_a_failure_goes_back_to_the_queue(engines):
    e = engines.make(["exit 1", "echo 1", "echo 2"])
    e.settle()
    claims = claims_of(e)
    d = e.backend.delay(0)                  # late, and the job before it failed: the
    e.backend.end_job(0, Status.FAILED)     # runner chooses what runs next there
    e.settle()
    assert e.st.progress.failed == 1 and e.st.promoted == {}
    assert claims == [] and e.st.next[0] == [d]     # it comes back with its Withdrawn
    e.backend.deliver(0)                    # the slot gives the handed one back: it is
    e.settle()                              # queued again, and claimed afresh
    assert claims[0] == d.job.index
    assert e.run_all()
    assert e.counts() == {"failed": 1, "succeeded": 2}
    assert started(e) == [0, 1, 2]


def test_a_late_handed_job_taken_back_before_it_arrives_never_starts(engines):
    e = engines.make(["echo 0", "echo 1", "echo 2"])
    e.settle()
    d = e.backend.delay(0)
    control.drain(e.st, "stopped by a test")   # (as Ctrl-C does: job 1 is taken back)
    e.settle()
    e.backend.end_job(0)                    # job 0 ends before job 1 comes: the runner
    e.settle()                              # waits for the slot's word on it
    assert e.st.promoted == {0: d.job.index}
    e.backend.deliver(0)                    # its Withdraw waits behind it: given back
    assert e.run_all()
    assert e.st.promoted == {} and started(e) == [0]
    assert statuses(e) == {0: "succeeded", 1: "queued", 2: "queued"}
    with another_shell(e) as store:
        assert store.row(1).attempt == 0    # its claim undone: the attempt not counted


def test_a_started_record_costs_no_commit_of_its_own_and_is_stored_with_its_end_or_the_tick(
        engines):
    e = engines.make(["echo 0", "echo 1", "echo 2"])
    e.settle()
    pid0 = e.backend.start_job(0)
    e.step()
    with another_shell(e) as store:
        assert store.row(0).pid is None     # not committed alone
        e.backend.end_job(0)        # its Ended, and job 1's Started: one turn, one commit
        e.step()
        row = store.row(0)          # job 0's start went with its end, in one statement
        assert row.status == "succeeded" and row.pid == pid0
        assert store.row(1).status == "handed" and store.row(1).pid is None
        pid = e.st.pids[0]
        e.tick()                    # the tick stores what was heard
        assert store.row(1).status == "running" and store.row(1).pid == pid


# ------------------------------------------------------------------ cancel, drain, kill
def test_hog_kill_of_a_handed_job_cancels_it_at_once_and_it_never_starts(engines):
    e = engines.make(["echo 0", "echo 1", "echo 2"])
    e.settle()
    with another_shell(e) as store:
        assert store.cancel(1) == "cancelled"
        row = store.row(1)
        assert row.status == "cancelled" and row.attempt == 0
    e.tick()
    e.settle()
    assert e.backend.withdrawals == [1] and 0 not in e.backend.nexts or \
        e.backend.nexts[0][0].job.index == 2
    assert e.run_all()
    assert started(e) == [0, 2]
    assert statuses(e) == {0: "succeeded", 1: "cancelled", 2: "succeeded"}
    assert not os.path.exists(e.st.layout.folder(1))


def test_a_handed_job_cancelled_as_its_slot_starts_it_is_stopped_on_the_tick(engines):
    e = engines.make(["echo 0", "echo 1"])
    e.settle()
    with another_shell(e) as store:
        store.cancel(1)
    e.backend.end_job(0)    # the slot starts job 1 before the runner's tick saw the cancel
    e.settle()
    e.tick()                # its start is stored: the row says it was cancelled meanwhile
    assert (0, StopHow.CANCEL) in e.backend.stops
    e.backend.end_job(0, Status.CANCELLED)
    assert e.run_all()
    assert statuses(e) == {0: "succeeded", 1: "cancelled"}


def test_hog_stop_takes_the_handed_job_back_to_the_queue_unstarted(engines):
    e = engines.make(["echo 0", "echo 1", "echo 2"])
    e.settle()
    with another_shell(e) as store:
        store.request("drain", e.st.runner_id)
    e.tick()
    e.settle()
    assert e.backend.withdrawals == [1] and not e.backend.nexts
    assert statuses(e) == {0: "running", 1: "queued", 2: "queued"}
    e.backend.end_job(0)
    assert e.settle()       # finished: nothing new started
    assert started(e) == [0]
    with another_shell(e) as store:
        assert store.row(1).attempt == 0 and store.row(1).status == "queued"


def test_hog_stop_now_interrupts_the_running_job_and_queues_the_handed_one(engines):
    e = engines.make(["echo 0", "echo 1"])
    e.settle()
    with another_shell(e) as store:
        store.request("kill", e.st.runner_id)
    e.tick()
    e.settle()
    assert (0, StopHow.KILL) in e.backend.stops and e.backend.withdrawals == [1]
    e.backend.end_job(0, Status.INTERRUPTED)
    assert e.settle()
    assert statuses(e) == {0: "interrupted", 1: "queued"}
    assert started(e) == [0]


# ------------------------------------------------------------ priorities, reservations
def test_a_higher_priority_job_added_later_overtakes_the_handed_one(engines):
    e = engines.make(["echo 0", "echo 1", "echo 2"], keep_alive=False)
    e.settle()
    with another_shell(e) as store:
        [urgent] = store.add([Job(index=0, command="urgent", priority=10)])
    e.tick()
    e.settle()
    assert e.backend.withdrawals == [1]
    assert e.backend.nexts[0][0].job.index == urgent
    assert statuses(e)[1] == "queued"
    assert e.run_all()
    assert started(e) == [0, urgent, 1, 2]


def test_nothing_is_handed_past_a_multi_gpu_job_waiting_for_its_reservation(engines):
    e = engines.make(["a", "b", {"cmd": "big", "gpus": 2, "name": "big"}, "c", "d"],
                     slots=("0", "1"))
    e.settle()
    assert started(e) == [0, 1]
    assert not e.st.next and not e.backend.nexts    # big is first in line
    e.backend.end_job(0)
    e.backend.end_job(1)
    e.settle()
    assert started(e)[2] == 2       # big took both GPUs as soon as they were free
    assert e.run_all()
    assert e.counts() == {"succeeded": 5}


def test_a_one_gpu_job_pinned_elsewhere_is_not_handed_to_this_slot(engines):
    e = engines.make(["a", {"cmd": "pinned", "gpu_ids": ["1"]}, "c"], slots=("0", "1"))
    e.settle()
    assert started(e) == [0, 1]
    assert e.backend.nexts[0][0].job.index == 2 or e.backend.nexts[1][0].job.index == 2
    assert e.run_all()
    assert e.counts() == {"succeeded": 3}


def test_a_handed_job_is_taken_back_to_run_on_a_slot_that_frees_first(engines):
    e = engines.make(["long", "short", "next"], slots=("0", "1"))
    e.settle()
    [(slot, [d])] = list(e.backend.nexts.items())
    assert d.job.index == 2
    other = 1 - slot
    e.backend.end_job(other)        # the other slot frees first, with nothing handed
    e.settle()
    while e.backend.pending:        # (its slot's answer, Withdrawn)
        e.settle()
    assert e.backend.withdrawals == [2]
    assert e.backend.dispatch_on(other).job.index == 2     # it runs there now
    assert e.run_all()
    assert e.counts() == {"succeeded": 3}


# ------------------------------------------------------------------------- hog gpus
def test_hog_gpus_removing_a_busy_slot_takes_back_its_handed_job(engines):
    e = engines.make([f"echo {i}" for i in range(4)], slots=("0", "1"))
    e.settle()
    assert sorted(d.job.index for ds in e.backend.nexts.values() for d in ds) == [2, 3]
    with another_shell(e) as store:
        store.request_gpus(e.st.runner_id, "0")
    e.tick()
    e.settle()
    assert e.backend.withdrawals == [e.st.next[0][0].job.index ^ 1] or \
        len(e.backend.withdrawals) == 1
    assert 1 not in e.backend.nexts
    e.backend.end_job(1)
    e.settle()
    assert e.backend.removed == [1]
    assert e.run_all()
    assert e.counts() == {"succeeded": 4}
    assert all(d.slot == 0 for d in e.backend.submitted[2:])


def test_a_lost_slot_queues_its_handed_job_again_unstarted(engines):
    e = engines.make(["echo 0", "echo 1"])
    e.settle()
    e.backend.nexts.clear()
    e.backend.lose_slot(0)
    e.settle()
    assert statuses(e)[0] in ("interrupted", "running", "succeeded")
    with another_shell(e) as store:
        row = store.row(1)
        assert row.status in ("queued", "running") and (row.status == "running"
                                                         or row.attempt == 0)


# -------------------------------------------------------------- real runs of hog
HOLD = "echo {i} >> {ledger}; while [ ! -e {go} ]; do sleep 0.05; done"


def handed(out) -> bool:
    return any(r["status"] == "handed" for r in job_rows(out).values())


@pytest.mark.timeout(60)
def test_sigkill_of_the_runners_group_with_a_handed_job_runs_it_exactly_once_on_rerun(
        tmp_path):
    out, ledger, go = tmp_path / "out", tmp_path / "ledger.txt", tmp_path / "go"
    jobs = job_file(tmp_path, HOLD.format(i=0, ledger=ledger, go=go),
                    f"echo 1 >> {ledger}", f"echo 2 >> {ledger}")
    runner = start_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "--output-dir", out)
    wait_for(lambda: out.exists() and handed(out), timeout=20, what="job 1 handed")
    job0 = int(job_rows(out)[0]["pid"] or 0) or None
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait(10)
    assert job_rows(out)[1]["status"] == "handed"
    go.touch()      # job 0's process may still be alive: it ends (or was ended) now
    r = run_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "--output-dir", out,
                timeout=40)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = counts_of(ledger)
    assert counts["1"] == 1 and counts["2"] == 1
    rows = job_rows(out)
    assert all(row["status"] == "succeeded" for row in rows.values())
    assert rows[1]["attempt"] == 1      # its handing-over was not counted as an attempt
    assert not (job_dir(tmp_path, 1, output="out") / "FAILURE").exists()
    if job0 is not None:
        wait_for(lambda: not pid_alive(job0), timeout=10, what="job 0 ended")


def _handed_by_a_dead_runner(out, attempts) -> None:
    """The store as a runner SIGKILLed with its slots leaves it: each job ``i`` handed
    ahead as attempt ``attempts[i]`` by a runner whose process is gone."""
    store = Store(str(out / ".hog"))
    try:
        dead = store.register_runner("0")
        for job_id, attempt in enumerate(attempts):     # (earlier attempts: ended)
            store.db.execute("UPDATE jobs SET attempt = ? WHERE id = ?", (attempt - 1, job_id))
            assert store.claim(job_id, attempt - 1, dead, 0, "0", handed=True) == attempt
        store.db.execute("UPDATE runners SET pid = 999999999 WHERE id = ?", (dead,))
    finally:
        store.close()


def _folder(out, i: int, *files: str, attempt: int = 1, status: str = "running") -> None:
    folder = out / f"job_{i}"
    folder.mkdir()
    for name in files:
        text = (f'name: "job_{i}"\nindex: {i}\nattempt: {attempt}\nstatus: "{status}"\n'
                f'exit_code: 0\n' if name == "INFO" else "")
        (folder / name.format(i=i)).write_text(text)


def test_a_dead_runners_handed_jobs_count_as_started_once_their_attempt_began(tmp_path):
    """Its runner and slots were killed between the slot starting a handed job and
    anyone telling the store; resumed, each job is settled by its folder."""
    out, ledger = tmp_path / "out", tmp_path / "ledger.txt"
    jobs = job_file(tmp_path, *[f"echo {i} >> {ledger}" for i in range(5)])
    assert run_hog(tmp_path, "add", out, "--job-file", jobs).returncode == 0
    _handed_by_a_dead_runner(out, [1, 1, 1, 1, 2])
    _folder(out, 0, "job_{i}.OUT", "job_{i}.ERR")         # spawned, its INFO not written
    # job 1: no folder (never moved into place: it never began)
    _folder(out, 2, "INFO", "job_{i}.OUT", "job_{i}.ERR")            # began, no end
    _folder(out, 3, "INFO", "job_{i}.OUT", "job_{i}.ERR", "SUCCESS",  # ended, unheard of
            status="succeeded")
    _folder(out, 4, "INFO", "job_{i}.OUT", "job_{i}.ERR", "FAILURE",  # attempt 1's end:
            status="failed")                                         # attempt 2 never began
    r = run_hog(tmp_path, "run", out, "--gpus", "0", timeout=40)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = job_rows(out)
    assert {i: row["status"] for i, row in rows.items()} == {i: "succeeded" for i in range(5)}
    assert {i: row["attempt"] for i, row in rows.items()} == {0: 2, 1: 1, 2: 2, 3: 1, 4: 2}
    assert sorted(counts_of(ledger)) == ["0", "1", "2", "4"]    # job 3 had succeeded
    assert "2 queued again, 1 had succeeded; 2 handed to its slots, never started" in r.stderr


@pytest.mark.timeout(60)
def test_hog_kill_of_a_handed_job_in_a_real_run_never_starts_it(tmp_path):
    out, ledger, go = tmp_path / "out", tmp_path / "ledger.txt", tmp_path / "go"
    jobs = job_file(tmp_path, HOLD.format(i=0, ledger=ledger, go=go),
                    f"echo 1 >> {ledger}", f"echo 2 >> {ledger}")
    runner = start_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "--output-dir", out)
    wait_for(lambda: out.exists() and handed(out), timeout=20, what="job 1 handed")
    r = run_hog(tmp_path, "kill", out, "1")
    assert r.returncode == 0 and "cancelled" in r.stdout, r.stdout + r.stderr
    time.sleep(0.6)     # (one tick of the runner: it takes the job back from the slot)
    go.touch()
    assert runner.wait(30) == 0
    assert counts_of(ledger) == {"0": 1, "2": 1}
    assert status_counts(out) == {"succeeded": 2, "cancelled": 1}
    assert not job_dir(tmp_path, 1, output="out").exists()


@pytest.mark.timeout(60)
def test_hog_stop_in_a_real_run_leaves_the_handed_job_queued_and_unstarted(tmp_path):
    out, ledger, go = tmp_path / "out", tmp_path / "ledger.txt", tmp_path / "go"
    jobs = job_file(tmp_path, HOLD.format(i=0, ledger=ledger, go=go),
                    f"echo 1 >> {ledger}")
    runner = start_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "--output-dir", out)
    wait_for(lambda: out.exists() and handed(out), timeout=20, what="job 1 handed")
    r = run_hog(tmp_path, "stop", out)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: job_rows(out)[1]["status"] == "queued", timeout=10,
             what="job 1 queued again")
    go.touch()
    runner.wait(30)
    assert counts_of(ledger) == {"0": 1}
    rows = job_rows(out)
    assert rows[0]["status"] == "succeeded"
    assert rows[1]["status"] == "queued" and rows[1]["attempt"] == 0
    assert not job_dir(tmp_path, 1, output="out").exists()
