"""Short jobs handed several ahead (issue 11): a slot whose last job was short (under
``SHORT_S``) is handed ``DEEP`` jobs ahead, starts them in turn and reports two or more
jobs to the runner at once, so the runner takes one turn for several jobs. After a job
that ran long a slot is handed one, as before. Every other rule of pre-dispatch holds
for each job handed: a failure gives them all back, ``hog kill`` takes one back before
it starts, and a slot that vanishes while it held its reports back loses no job and
runs none twice (the reports are read from the folders).

Stepped engine tests over ``HandingBackend``, a real slot process, then real runs
with a ledger outside the output directory.
"""
import os
import signal
from collections import Counter

import pytest

import hog.backends.handoff as handoff
from hog.engine import dispatch as engine_dispatch
from hog.engine.state import DEEP, SHORT_S
from hog.messages import Ended, Started
from hog.model import Job, Status
from hog.state.jobread import read_info
from tests.harness import job_file, job_rows, pid_alive, start_hog, wait_for
from tests.slot_support import dispatch, ended, start_slot
from tests.test_predispatch import another_shell, handing_engines, started, statuses

SHORT = SHORT_S / 10


@pytest.fixture
def engines(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_dispatch, "CALM", 1)    # deep after one success (the rule: CALM)
    yield from handing_engines(tmp_path)


def handed_to(e, slot: int = 0) -> list:
    return [d.job.index for d in e.st.next.get(slot, [])]


def deep(engines, n: int):
    """A run of ``n`` jobs (``DEEP + 2`` at least) on one slot whose first job was
    short: it holds job 1 and is handed ``DEEP`` jobs ahead."""
    e = engines.make([f"echo {i}" for i in range(n)])
    e.settle()
    e.backend.end_job(0, took=SHORT)
    e.settle()
    assert started(e) == [0, 1] and len(handed_to(e)) == DEEP
    return e


# ------------------------------------------------------------ stepped engine
def test_a_slot_whose_job_was_short_is_handed_several_jobs_ahead_in_run_order(engines):
    e = engines.make([f"echo {i}" for i in range(10)])
    e.settle()
    assert started(e) == [0] and handed_to(e) == [1]    # nothing known of its jobs yet
    e.backend.end_job(0, took=SHORT)
    e.settle()
    assert started(e) == [0, 1]
    assert handed_to(e) == list(range(2, 2 + DEEP))
    assert [d.job.index for d in e.backend.nexts[0]] == handed_to(e)
    assert all(statuses(e)[i] == "handed" for i in handed_to(e))
    e.backend.took = SHORT
    assert e.run_all()
    assert started(e) == list(range(10))
    assert e.counts() == {"succeeded": 10}


def test_after_a_failure_slots_are_handed_one_ahead_until_calm_jobs_in_a_row_succeed(
        engines, monkeypatch):
    monkeypatch.setattr(engine_dispatch, "CALM", 3)
    e = engines.make(["true", "true", "exit 3"] + [f"echo {i}" for i in range(3, 20)])
    e.settle()
    for _ in range(2):
        e.backend.end_job(0, took=SHORT)
        e.settle()
    assert len(handed_to(e)) == 1               # two successes: not yet calm
    e.backend.end_job(0, Status.FAILED, took=SHORT)
    e.settle()
    for n in range(3):
        assert len(handed_to(e)) <= 1, n        # after the failure: one at a time
        e.backend.end_job(0, took=SHORT)
        e.settle()
    assert len(handed_to(e)) == DEEP            # three in a row succeeded
    e.backend.took = SHORT
    assert e.run_all()
    assert Counter(started(e)) == Counter(range(20))


def test_a_slot_whose_job_ran_long_is_handed_one_job_ahead(engines):
    e = deep(engines, 10)
    held = handed_to(e)
    e.backend.end_job(0, took=10 * SHORT_S)     # job 1 ran long: the slot starts job 2,
    e.settle()                                  # holds the others, and is handed no more
    assert started(e) == [0, 1, 2] and handed_to(e) == held[1:]
    while len(handed_to(e)) > 1:
        e.backend.end_job(0, took=10 * SHORT_S)
        e.settle()
        assert len(handed_to(e)) == len(held) - (len(started(e)) - 2)
    e.backend.end_job(0, took=10 * SHORT_S)
    e.settle()
    assert len(handed_to(e)) == 1               # one ahead, as after a long job
    assert e.run_all()
    assert started(e) == list(range(10))


def test_a_failure_gives_back_every_job_handed_to_its_slot_and_they_run_next_in_order(
        engines):
    e = deep(engines, 8)
    held = handed_to(e)
    assert len(held) == DEEP
    e.backend.end_job(0, Status.FAILED, took=SHORT)     # job 1 failed: none of them starts
    e.settle()
    assert started(e)[:2] == [0, 1]
    assert all(statuses(e)[i] in ("queued", "running", "handed") for i in held)
    assert all(e.row(i).attempt <= 1 for i in held)
    e.backend.took = SHORT
    assert e.run_all()
    assert started(e) == list(range(8))         # given back, then run in their order
    assert Counter(started(e)) == Counter(range(8))
    assert e.counts() == {"succeeded": 7, "failed": 1}


def test_a_free_slot_takes_back_jobs_handed_behind_a_short_jobs_successor_only_once_it_runs_long(
        engines):
    e = engines.make([f"echo {i}" for i in range(6)], slots=("0", "1"))
    e.settle()
    assert sorted(started(e)) == [0, 1] and handed_to(e, 0) + handed_to(e, 1) == [2, 3]
    e.backend.end_job(0, took=SHORT)            # slot 0 runs 2; 4 and 5 are handed to it
    e.settle()
    assert handed_to(e, 0) == [4, 5]
    e.backend.end_job(1, took=SHORT)            # slot 1 runs 3, then ends it: nothing is
    e.settle()                                  # left in the queue for it
    e.backend.end_job(1, took=SHORT)
    e.settle()
    assert 1 not in e.st.running and handed_to(e, 0) == [4, 5]
    assert e.backend.withdrawals == []          # job 2 runs since under SHORT_S
    e.st.progress.running[0].started -= 10 * SHORT_S    # it has run long now
    e.tick()
    e.settle()
    assert sorted(e.backend.withdrawals) == [4, 5]
    assert e.st.running[1].job.index == 4       # the free slot runs the first taken back
    assert e.run_all()
    assert Counter(started(e)) == Counter(range(6))


def test_jobs_handed_deep_that_reach_their_slot_after_a_failure_each_run_once(engines):
    e = engines.make(["true", "exit 3", "true", "true"])
    e.settle()
    e.backend.end_job(0, took=SHORT)
    e.settle()
    assert started(e) == [0, 1] and handed_to(e) == [2, 3]
    e.backend.delay(0, every=True)              # 2 and 3 are on their way as 1 fails
    e.backend.end_job(0, Status.FAILED, took=SHORT)
    assert not e.settle()                       # (not finished: they are coming back)
    assert handed_to(e) == [2, 3]               # and not handed again before
    e.backend.deliver(0)                        # the slot gives them back
    e.backend.took = SHORT
    assert e.run_all()
    assert started(e) == [0, 1, 2, 3]           # once each (a Withdrawn of the first
    assert e.counts() == {"succeeded": 3, "failed": 1}     # handing took back the second)


def test_hog_kill_of_a_job_second_in_line_on_a_slot_cancels_it_before_it_starts(engines):
    e = deep(engines, 8)
    victim = handed_to(e)[1]
    with another_shell(e) as store:
        assert store.cancel(victim) == "cancelled"
    e.tick()
    e.settle()
    assert victim in e.backend.withdrawals and victim not in handed_to(e)
    e.backend.took = SHORT
    assert e.run_all()
    assert victim not in started(e)
    assert sorted(started(e)) == [i for i in range(8) if i != victim]
    assert statuses(e)[victim] == "cancelled"
    assert not os.path.exists(e.st.layout.folder(victim))


def test_hog_stop_takes_back_every_job_handed_deep_queued_as_before_unstarted(engines):
    e = deep(engines, 10)
    held = handed_to(e)
    with another_shell(e) as store:
        store.request("drain", e.st.runner_id)
    e.tick()
    e.settle()
    assert sorted(e.backend.withdrawals) == held and not e.backend.nexts
    assert all(statuses(e)[i] == "queued" and e.row(i).attempt == 0 for i in held)
    e.backend.end_job(0, took=SHORT)
    assert e.settle()       # finished: nothing new started
    assert started(e) == [0, 1]


def test_a_higher_priority_job_added_later_overtakes_the_last_jobs_handed_deep(engines):
    e = deep(engines, 10)
    held = handed_to(e)
    with another_shell(e) as store:
        urgent = store.add([Job(index=0, command="urgent", priority=10),
                            Job(index=0, command="urgent too", priority=10)])
    e.tick()
    e.settle()
    assert sorted(e.backend.withdrawals) == held[-2:]       # the two that sort last
    assert handed_to(e)[:len(held) - 2] == held[:-2]        # the rest keep their place
    e.backend.took = SHORT
    assert e.run_all()
    order = started(e)
    assert all(order.index(u) < order.index(held[-2]) for u in urgent)
    assert Counter(order) == Counter(list(range(10)) + urgent)


def test_hog_gpus_removing_a_slot_takes_back_every_job_handed_deep_to_it(engines):
    e = engines.make([f"echo {i}" for i in range(16)], slots=("0", "1"))
    e.settle()
    e.backend.end_job(1, took=SHORT)
    e.settle()
    held = handed_to(e, 1)
    assert len(held) == DEEP
    with another_shell(e) as store:
        store.request_gpus(e.st.runner_id, "0")
    e.tick()
    e.settle()
    assert set(held) <= set(e.backend.withdrawals) and 1 not in e.backend.nexts
    e.backend.end_job(1)
    e.settle()
    assert e.backend.removed == [1]
    e.backend.took = SHORT
    assert e.run_all()
    assert Counter(started(e)) == Counter(range(16))
    assert all(d.slot == 0 for d in e.backend.submitted if d.job.index in held)


def test_a_vanished_slot_that_held_its_reports_back_has_them_read_from_the_folders(
        engines):
    e = deep(engines, 8)
    e.backend.end_job(0, took=SHORT)            # 1 ends, 2 starts; 2 ends, 3 starts: the
    e.backend.end_job(0, took=SHORT)            # slot held those four reports back
    e.backend.events.clear()
    e.backend.lose_slot(0)
    e.settle()
    rows = {i: e.row(i) for i in range(8)}
    assert rows[1].status == rows[2].status == "succeeded"      # as their folders say
    assert rows[3].status == "interrupted"      # it ran when the slot vanished
    assert rows[4].status in ("queued", "running", "handed") and rows[4].attempt <= 1
    assert read_info(e.st.layout, 3)["status"] == "interrupted"
    assert not os.path.exists(e.st.layout.folder(4)) or 4 in started(e)[4:]
    e.backend.took = SHORT
    assert e.run_all(), "the run goes on with a new slot"
    assert Counter(started(e)) == Counter(range(8))     # none started twice
    assert e.counts() == {"succeeded": 7, "interrupted": 1}


def test_a_job_its_vanished_slot_spawned_before_writing_its_info_is_not_run_again(
        engines):
    e = deep(engines, 8)
    e.backend.end_job(0, took=SHORT)            # 1 ends; 2's streams are made and it is
    e.backend.events.clear()                    # spawned: the slot vanishes before it
    os.remove(e.st.layout.info_path(2))         # wrote 2's INFO or reported
    open(e.st.layout.out_path(2), "w").close()
    e.backend.lose_slot(0)
    e.settle()
    assert e.row(1).status == "succeeded"
    assert e.row(2).status == "interrupted"     # it may have run: not queued again
    assert os.path.exists(e.st.layout.out_path(2))
    assert all(e.row(i).status in ("queued", "running", "handed") for i in range(3, 8))
    e.backend.took = SHORT
    assert e.run_all()
    assert Counter(started(e)) == Counter(range(8))
    assert e.counts() == {"succeeded": 7, "interrupted": 1}


# ------------------------------------------------------------ a real slot
@pytest.fixture
def slot(tmp_path, monkeypatch):
    monkeypatch.setattr(handoff, "REPORT_S", 30.0)  # (the slot is forked: it inherits it)
    backend = start_slot(str(tmp_path / "out"))
    yield backend
    pids = [p.pid for p in backend.procs.values()]
    backend.shutdown([])
    assert not any(pid_alive(pid) for pid in pids)


def test_a_slot_reports_short_jobs_handed_several_ahead_together(slot, tmp_path):
    gate = tmp_path / "go"
    slot.submit(dispatch(0, f"while [ ! -e {gate} ]; do sleep 0.01; done"))
    last = handoff.HOLD_WHILE + 1
    for i in range(1, last + 1):
        slot.submit(dispatch(i, "true", ahead=True))
    gate.touch()
    conn, reads = slot.conns[0], []
    while not ended(last)([e for read in reads for e in read]):
        assert conn.poll(20), f"no more events: {reads}"
        reads.append(slot.receive(conn))
    kinds = [[(type(e).__name__, e.index if isinstance(e, Started) else e.outcome.index)
              for e in read] for read in reads]
    # 0 ends and 1 starts while HOLD_WHILE wait: held; 1 ends and 2 starts with fewer
    # left: sent, in one frame (one wake-up of the runner for two jobs)
    assert kinds[0] == [("Started", 0), ("Ended", 0), ("Started", 1), ("Ended", 1),
                        ("Started", 2)], kinds
    assert [e for read in kinds for e in read] == [
        (kind, i) for i in range(last + 1) for kind in ("Started", "Ended")]
    ends = [e for read in reads for e in read if isinstance(e, Ended)]
    assert [e.started_next for e in ends] == [True] * last + [False]
    assert all(e.outcome.status is Status.SUCCEEDED for e in ends)


# ------------------------------------------------------------ real runs
def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("PPid:")).split()[1])


@pytest.mark.timeout(90)
def test_a_slot_killed_mid_sweep_of_short_jobs_loses_none_and_runs_none_twice(tmp_path):
    out, ledger = tmp_path / "out", tmp_path / "ledger.txt"
    n = 300
    jobs = job_file(tmp_path, *[f"echo {i} $PPID >> {ledger}" for i in range(n)])
    runner = start_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "--output-dir", out)
    wait_for(lambda: ledger.exists() and len(ledger.read_text().splitlines()) >= 40,
             timeout=30, what="40 jobs done")
    slot = int(ledger.read_text().splitlines()[-1].split()[1])     # (a job's parent)
    assert _parent(slot) == runner.pid
    os.kill(slot, signal.SIGKILL)
    code = runner.wait(60)
    runs = Counter(line.split()[0] for line in ledger.read_text().splitlines())
    assert all(v == 1 for v in runs.values()), {k: v for k, v in runs.items() if v > 1}
    rows = job_rows(out)
    assert len(rows) == n
    bad = {i: r["status"] for i, r in rows.items() if r["status"] != "succeeded"}
    # at most the job it ran as it vanished, and the one before if the slot had started
    # that one's successor but not yet written its end whole (no marker): interrupted
    assert set(bad.values()) <= {"interrupted"} and len(bad) <= 2, bad
    assert {str(i) for i in range(n) if i not in bad} <= set(runs)   # each success ran
    parents = {line.split()[1] for line in ledger.read_text().splitlines()} - {"1"}
    assert len(parents) == 2        # the run went on in a new slot (a job running as its
                                    # slot vanished may print after, its parent gone)
    assert code == (0 if not bad else 1)
