"""Jobs claimed ahead in blocks (``engine.reserve``, the run loop's): a turn that hands
a busy slot its next job also claims the next few handable jobs, so later handovers
need no claim (nor a commit) of their own. They are handed over in run order; a
reserved job is ``handed`` in the store (shown and counted as queued, recovered like
any handed job); the reserve goes back to the queue, each job as before its claim, on
every tick, when a slot is free, when a queued job sorts within it, when another
runner works on the queue and when the run stops.

Stepped engines (``claims_ahead`` on, as the loop sets it), then real ``python -m hog``
runs, which always claim ahead."""
import pytest

from hog.engine import control, reserve
from hog.engine.reserve import RESERVE_MAX
from hog.engine.runner import GATHER_S, GATHER_SLOTS, gather_s
from hog.model import Job, Status
from hog.state.store import Store
from tests import test_predispatch
from tests.harness import job_dirs, job_file, run_hog, status_counts
from tests.test_predispatch import started, statuses

pytestmark = pytest.mark.timeout(120)

engines = test_predispatch.engines      # the fixture: stepped engines with handing slots


def claiming(engines, jobs, **options):
    e = engines.make(jobs, **options)
    e.st.claims_ahead = True
    return e


def hand_over(e, times: int, slot: int = 0) -> None:
    """End ``slot``'s job ``times`` times, each starting its next (the clock stands)."""
    for _ in range(times):
        e.settle()
        e.backend.end_job(slot, Status.SUCCEEDED)
    e.settle()


def reserved(e) -> list:
    return [job.index for _, job, _ in e.st.reserve]


def test_short_jobs_are_claimed_ahead_in_blocks_and_handed_over_in_run_order(engines):
    e = claiming(engines, ["true"] * 60)
    hand_over(e, 12)
    assert e.st.reserve, "nothing was claimed ahead"
    assert len(e.st.reserve) <= RESERVE_MAX
    after = started(e)[-1] + 1          # the one running, then its next, then the reserve
    assert reserved(e) == list(range(after + 1, after + 1 + len(e.st.reserve)))
    rows = statuses(e)
    assert all(rows[i] == "handed" for i in reserved(e))
    assert e.counts() == {"succeeded": 12, "queued": 48}     # (reserved: shown as queued)
    assert e.run_all()
    assert started(e) == list(range(60))
    assert e.counts() == {"succeeded": 60}
    assert all(r.attempt == 1 for r in e.st.store.all_rows())


def test_the_reserve_goes_back_to_the_queue_on_the_tick_as_it_was(engines):
    e = claiming(engines, ["true"] * 40)
    hand_over(e, 8)
    held = reserved(e)
    assert held
    e.tick()
    assert not e.st.reserve
    rows = {r.id: r for r in e.st.store.all_rows()}
    assert all(rows[i].status == "queued" and rows[i].attempt == 0 for i in held)
    assert e.run_all()
    assert started(e) == list(range(40))


def test_a_free_slot_takes_the_reserve_back_and_the_queue_head_runs_first(engines):
    e = claiming(engines, ["true"] * 40, slots=("0", "1"))
    for _ in range(6):
        e.settle()
        e.backend.end_job(0, Status.SUCCEEDED)
    e.settle()
    held = reserved(e)
    assert held
    e.backend.end_job(1, Status.FAILED)     # slot 1 frees (its next job comes back)
    e.settle()
    nexts = [d.job.index for ds in e.st.next.values() for d in ds]
    assert held[0] in started(e) + nexts    # went back, and is the next to start
    queued = sorted(i for i, s in statuses(e).items() if s == "queued")
    assert max(started(e)) < min(queued + [99])     # nothing started out of order
    assert e.run_all()
    assert sorted(started(e)) == list(range(40))
    assert list(statuses(e).values()).count("succeeded") == 39


def test_a_job_that_sorts_within_the_reserve_takes_it_back(engines, monkeypatch):
    """A source read as slots free up brings a higher priority job while jobs are
    claimed ahead: they go back, and it runs next."""
    monkeypatch.setattr("hog.engine.intake.LOOKAHEAD", 12)
    jobs = ["true"] * 30 + [{"cmd": "urgent", "priority": 5}] + ["true"] * 10
    e = claiming(engines, jobs)
    claimed_ahead = False
    for _ in range(40):
        e.settle()
        if 30 in started(e):
            break
        claimed_ahead |= bool(e.st.reserve)
        e.backend.end_job(0, Status.SUCCEEDED)
    assert claimed_ahead
    order = started(e)
    assert 30 in order and order.index(30) < 28, order     # before the jobs it overtook
    assert e.run_all()
    assert sorted(started(e)) == list(range(41))


def test_a_stopped_run_gives_its_reserve_back_and_ends(engines):
    e = claiming(engines, ["true"] * 40)
    hand_over(e, 8)
    held = reserved(e)
    assert held
    control.drain(e.st, "stopped")
    e.settle()
    assert not e.st.reserve
    assert all(statuses(e)[i] == "queued" for i in held)
    for slot in list(e.backend.attempts):
        e.backend.end_job(slot, Status.SUCCEEDED)
    assert e.settle()
    engines.finish(e)
    assert "handed" not in statuses(e).values()


def test_a_real_sweep_of_short_jobs_runs_each_once_in_order_with_claims_ahead(tmp_path):
    job_file(tmp_path, *[f"echo {i} >> {tmp_path / 'ledger'}" for i in range(300)])
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ledger").read_text().split() == [str(i) for i in range(300)]
    assert len(job_dirs(tmp_path)) == 300
    assert status_counts(tmp_path / "output") == {"succeeded": 300}


def test_sigkill_of_the_runners_group_with_jobs_claimed_ahead_runs_each_once_on_rerun(
        tmp_path):
    """The runner's whole group is killed while it holds jobs claimed ahead (and writes
    not committed yet): on the rerun, every job that was not running then has run
    exactly once, and a job claimed ahead that never started has no attempt counted."""
    import os
    import signal

    from tests.harness import counts_of, job_rows, start_hog, wait_for
    out, ledger, go = tmp_path / "out", tmp_path / "ledger.txt", tmp_path / "go"
    hold = f"while [ ! -e {go} ]; do sleep 0.05; done; echo 40 >> {ledger}"
    jobs = job_file(tmp_path, *[f"echo {i} >> {ledger}" for i in range(40)], hold,
                    *[f"echo {i} >> {ledger}" for i in range(41, 60)])
    runner = start_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "--output-dir", out)

    def claimed_ahead() -> bool:
        rows = job_rows(out) if (out / ".hog" / "hog.sqlite").exists() else {}
        return any(r["status"] == "handed" and r["slot"] is None for r in rows.values())
    ended = out / "job_39" / "SUCCESS"  # (its slot starts job 40 first, then records 39)
    wait_for(lambda: counts_of(ledger).get("39") == 1 and ended.exists() and claimed_ahead(),
             timeout=30, what="job 40 running, job 39 recorded, later jobs claimed ahead")
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait(10)
    go.touch()
    r = run_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "--output-dir", out, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = counts_of(ledger)      # (job 40 was running: interrupted, and run again)
    assert {k: n for k, n in counts.items() if k != "40"} == \
        {str(i): 1 for i in range(60) if i != 40}
    assert counts["40"] >= 1
    rows = job_rows(out)
    assert all(row["status"] == "succeeded" for row in rows.values())
    assert all(rows[i]["attempt"] == 1 for i in range(41, 60))


def test_the_loop_gathers_slot_reports_only_while_every_busy_slot_holds_its_next_job(
        engines):
    e = claiming(engines, ["true"] * 12, slots=("0", "0", "1"))
    e.settle()
    assert set(e.st.running) == {0, 1, 2} and set(e.st.next) == {0, 1, 2}
    assert gather_s(e.st) == GATHER_S   # (nothing waits on the runner: it may read later)
    control.drain(e.st, "test")
    assert gather_s(e.st) == 0
    assert e.run_all()
    assert gather_s(e.st) == 0          # (nothing runs)


def test_the_loop_does_not_gather_while_a_busy_slot_has_no_next_job(engines):
    e = claiming(engines, ["true"] * 5, slots=("0", "0", "1"))
    e.settle()
    assert set(e.st.running) == {0, 1, 2} and len(e.st.next) == 2
    assert gather_s(e.st) == 0          # that slot's end is answered at once
    assert e.run_all()


@pytest.mark.parametrize("slots", [("0",), ("0", "1")])
def test_the_loop_does_not_gather_the_reports_of_fewer_busy_slots(engines, slots):
    e = claiming(engines, ["true"] * 8, slots=slots)
    e.settle()
    assert len(e.st.running) == len(slots) < GATHER_SLOTS and set(e.st.next) == set(e.st.running)
    assert gather_s(e.st) == 0          # one at a time: a window would only add a wake-up
    assert e.run_all()


def test_the_reserve_given_back_goes_to_the_head_of_the_ready_list_unread(
        engines, monkeypatch):
    """Giving the reserve back (a tick, a free slot, a stop) puts its jobs back where
    they were taken from, at the head of the ready list with the rows they were
    claimed with: the queue is not read again for them (64 rows and their jobs, on
    every such turn). A queued job that sorts before them has the list read again."""
    e = claiming(engines, ["true"] * 40)
    hand_over(e, 8)
    held = reserved(e)
    assert held
    reads = []
    queued = e.st.store.queued
    monkeypatch.setattr(e.st.store, "queued", lambda n: reads.append(n) or queued(n))
    before = [job.index for _, job in e.st.ready]
    e.tick()
    assert not e.st.reserve
    assert [job.index for _, job in e.st.ready][:len(held) + len(before)] == held + before
    assert reads == []
    rows = {r.id: r for r in e.st.store.all_rows()}
    assert all(rows[i].status == "queued" and rows[i].attempt == 0 for i in held)
    assert e.run_all()
    assert started(e) == list(range(40))
    assert all(r.attempt == 1 for r in e.st.store.all_rows())
    assert engines.finish(e) == 0

    e = claiming(engines, [f"echo {i}" for i in range(40)])    # (another sweep's jobs)
    hand_over(e, 8)
    assert e.st.reserve
    other = Store(e.st.layout.state_dir)            # hog add from another shell
    [added] = other.add([Job(index=0, command="urgent", priority=5)])
    other.close()
    urgent = e.st.store.row(added)
    assert urgent is not None
    e.st.ready.insert(0, (urgent, urgent.job()))    # (as a reading of the queue finds it)
    reserve.give_back(e.st)
    assert not e.st.ready                           # read again, in order
    assert e.run_all()
    assert e.counts() == {"succeeded": 81}


def test_a_job_given_back_after_a_failure_runs_before_the_reserve_given_back(engines):
    """One slot: its job fails, so the job handed to it comes back unstarted while the
    ready list is empty and the reserve holds the jobs after it; the reserve goes back
    too, and the job that came back runs first, in order."""
    e = claiming(engines, [f"echo {i}" for i in range(40)])
    hand_over(e, 6)
    while e.st.ready:                   # (the ready list used up: it says nothing now)
        e.st.ready.popleft()
    assert e.st.reserve and 0 in e.st.next
    handed = e.st.next[0][0].job.index
    e.backend.end_job(0, Status.FAILED)     # its next job comes back unstarted
    e.settle()
    assert started(e)[-1] == handed, (started(e), handed, reserved(e))
    assert e.run_all(Status.SUCCEEDED)
    assert started(e) == list(range(40)) and started(e).count(handed) == 1


def test_the_sweeps_total_counts_the_jobs_claimed_ahead(engines):
    """Recounting the total (the source's end, a tick, a resize) counts the reserve: a
    reserved job is handed to no slot yet and not queued in the store, but still to
    run (a 3-job sweep ended with HOG_TOTAL=2 when one was reserved at the source's
    end)."""
    from hog.engine import intake
    e = claiming(engines, ["true"] * 60)
    hand_over(e, 12)
    assert e.st.reserve and e.st.source_done
    intake.refresh_total(e.st)
    assert e.st.progress.total == 60
    assert e.run_all()
    assert e.st.progress.total == 60 and e.st.progress.finished == 60
