"""No job outlives hog unrecorded, none runs twice at once, and peers recover a dead
runner (issue 10, points 4 and 5), with real faults: SIGKILL of hog's whole process
group, SIGKILL of one of three runners, and jobs that escape their process group
(``setsid``, daemons).

Exactly-once is checked with a ledger outside the output directory: each job appends
``NAME start`` and, when it ends by itself, ``NAME end``; it holds an ``flock`` on a
lock file of its own for as long as any of its processes lives, and writes
``NAME DOUBLE`` if it cannot take it (a second copy while the first still runs).
"""
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from hog.model import Job
from hog.state.store import Store
from tests.harness import (
    info,
    job_dir,
    job_file,
    job_rows,
    markers,
    pid_alive,
    runner_rows,
    running_rows,
    status_counts,
    wait_for,
)


def ledger_job(tmp: Path, sleep: float) -> str:
    """A job line: the per-job lock, the ledger's start and end lines."""
    ledger, locks = tmp / "ledger.txt", tmp / "locks"
    locks.mkdir(exist_ok=True)
    return (f"exec 9>>{locks}/$HOG_JOB_NAME.lock; "
            f"flock -n 9 || echo \"$HOG_JOB_NAME DOUBLE\" >> {ledger}; "
            f"echo \"$HOG_JOB_NAME start\" >> {ledger}; sleep {sleep}; "
            f"echo \"$HOG_JOB_NAME end\" >> {ledger}")


def ledger(tmp: Path) -> Counter:
    path = tmp / "ledger.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(tuple(line.split()) for line in lines)


def started_names(tmp: Path) -> set:
    return {name for (name, what), _ in ledger(tmp).items() if what == "start"}


def assert_exactly_once(tmp: Path, n: int) -> Counter:
    seen = ledger(tmp)
    assert not [k for k in seen if k[1] == "DOUBLE"], f"two copies at once: {seen}"
    ends = {name: c for (name, what), c in seen.items() if what == "end"}
    assert ends == {f"job_{i}": 1 for i in range(n)}, seen
    return seen


@pytest.mark.timeout(60)
def test_after_kill_9_of_hogs_whole_process_group_the_next_run_ends_the_orphans_first(hq):
    out, n = hq.tmp / "out", 5
    jobs = job_file(hq.tmp, *[ledger_job(hq.tmp, 1.5)] * n)
    a = hq.start("--job_file", jobs, "--gpus", "0,1,2", "--output_dir", out, "-q")
    # (issue 11: the store has a job's pid from the runner's next write or tick on)
    wait_for(lambda: len(running_rows(out)) == 3 and len(started_names(hq.tmp)) == 3
             and all(r["pgid"] for r in running_rows(out)),
             timeout=20, what="three jobs running")
    orphans = {r["id"]: r for r in running_rows(out)}
    for row in orphans.values():              # recorded as they started: store and INFO
        assert row["pgid"] == row["sid"] == row["pid"] and row["proc_start"]
        record = info(job_dir(hq.tmp, row["id"], output="out"))
        assert (record["pid"], record["pgid"], str(record["proc_start"])) == \
            (row["pid"], row["pgid"], row["proc_start"])
    os.killpg(a.pid, signal.SIGKILL)          # what `kill -9 %1` does
    a.wait(10)
    assert all(pid_alive(r["pid"]) for r in orphans.values()), \
        "the jobs run in their own sessions: they survive their runner's group"

    t0 = time.monotonic()
    b = hq.run("--job_file", jobs, "--gpus", "0,1,2", "--output_dir", out, timeout=40)
    assert b.returncode == 0, b.stderr
    assert "recovered 3 job(s)" in b.stdout + b.stderr
    assert "process(es) left of 3 job(s) whose runner died" in b.stderr
    assert not any(pid_alive(r["pid"]) for r in orphans.values())
    seen = assert_exactly_once(hq.tmp, n)
    for i in orphans:                         # killed before it ran again, never beside it
        assert seen[(f"job_{i}", "start")] == 2
        assert markers(job_dir(hq.tmp, i, output="out")) == ["SUCCESS"]
    assert status_counts(out) == {"succeeded": n}
    assert time.monotonic() - t0 < 20


@pytest.mark.timeout(60)
def test_a_survivor_of_three_runners_recovers_the_jobs_of_the_one_killed_within_5_s(hq):
    out, n = hq.tmp / "out", 8
    jobs = job_file(hq.tmp, *[ledger_job(hq.tmp, 1.5)] * n)
    a = hq.start("--job_file", jobs, "--gpus", "0,1", "--output_dir", out, "-q")
    wait_for(lambda: len(running_rows(out)) == 2, timeout=20, what="runner A running 2 jobs")
    b = hq.start("--job_file", jobs, "--gpus", "2", "--output_dir", out, "-q")
    c = hq.start("--job_file", jobs, "--gpus", "3", "--output_dir", out, "-q")
    wait_for(lambda: len({r["runner"] for r in running_rows(out)}) == 3, timeout=20,
             what="all three runners running a job")
    a_id = next(r["id"] for r in runner_rows(out) if r["pid"] == a.pid)
    a_jobs = [r["id"] for r in running_rows(out) if r["runner"] == a_id]
    assert a_jobs
    a.signal(signal.SIGKILL)
    killed = time.monotonic()
    a.wait(10)

    def recovered():
        rows = job_rows(out)
        return all(rows[i]["runner"] != a_id for i in a_jobs)
    wait_for(recovered, timeout=5, interval=0.02, what="a survivor to recover A's jobs")
    took = time.monotonic() - killed
    assert b.wait(40) == 0, b.output
    assert c.wait(40) == 0, c.output
    assert "recovered" in b.output + c.output
    assert status_counts(out) == {"succeeded": n}
    seen = assert_exactly_once(hq.tmp, n)
    for i in a_jobs:
        assert seen[(f"job_{i}", "start")] == 2
        assert job_rows(out)[i]["runner"] != a_id
        assert info(job_dir(hq.tmp, i, output="out"))["attempt"] == 2
    for i in range(n):
        assert markers(job_dir(hq.tmp, i, output="out")) == ["SUCCESS"]
    print(f"recovered within {took:.2f} s of the SIGKILL")


def _escaper_jobs(tmp: Path) -> list:
    py = ("import os, sys, time\n"
          "if os.fork(): os._exit(0)\n"
          "os.setsid()\n"
          "if os.fork(): os._exit(0)\n"
          "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
          "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
          "time.sleep(300)\n")
    (tmp / "daemon.py").write_text(py)
    wait = "while [ ! -s {f} ]; do sleep 0.02; done"
    return [
        f"setsid nohup sleep 300 >/dev/null 2>&1 & echo $! > {tmp}/p0.tmp; "
        f"mv {tmp}/p0.tmp {tmp}/p0",
        f"setsid -f sh -c 'echo $$ > {tmp}/p1.tmp; mv {tmp}/p1.tmp {tmp}/p1; exec sleep 300' "
        f">/dev/null 2>&1; " + wait.format(f=f"{tmp}/p1"),
        f"python3 {tmp}/daemon.py {tmp}/p2; " + wait.format(f=f"{tmp}/p2"),
        f"python3 -c 'import os, time; os.setpgid(0, 0); open(\"{tmp}/p3.tmp\", \"w\")"
        f".write(str(os.getpid())); os.rename(\"{tmp}/p3.tmp\", \"{tmp}/p3\"); "
        f"time.sleep(300)' & " + wait.format(f=f"{tmp}/p3"),
    ]


@pytest.mark.timeout(60)
def test_processes_that_leave_the_jobs_process_group_are_ended_with_the_job(hq):
    """``setsid nohup ... &``, ``setsid -f``, a daemon's double fork with setsid, and
    a ``setpgid`` into a group of its own: each outlived its job and hog before."""
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, *_escaper_jobs(hq.tmp))
    r = hq.run("--job_file", jobs, "--gpus", "0,1,2,3", "--output_dir", out, "--grace", "1",
               timeout=40)
    ended = time.monotonic()
    assert r.returncode == 0, r.stderr
    pids = [int((hq.tmp / f"p{i}").read_text()) for i in range(4)]
    assert status_counts(out) == {"succeeded": 4}
    # each was ended when its job ended (TERM within the grace of 1 s): gone by now
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=max(0.1, ended + 2 -
             time.monotonic()), what=f"the escapers {pids} to be gone")
    for i in range(4):
        assert markers(job_dir(hq.tmp, i, output="out")) == ["SUCCESS"]


@pytest.mark.timeout(60)
def test_an_escaper_that_ignores_sigterm_is_killed_after_the_grace(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, f"setsid sh -c 'trap \"\" TERM; echo $$ > {hq.tmp}/p.tmp; "
                            f"mv {hq.tmp}/p.tmp {hq.tmp}/p; while :; do sleep 0.1; done' "
                            f">/dev/null 2>&1 & while [ ! -s {hq.tmp}/p ]; do sleep 0.02; done")
    t0 = time.monotonic()
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out, "--grace", "1",
               timeout=40)
    assert r.returncode == 0, r.stderr
    pid = int((hq.tmp / "p").read_text())
    assert not pid_alive(pid)
    assert time.monotonic() - t0 < 10


@pytest.mark.timeout(60)
def test_after_kill_9_of_hogs_group_the_next_run_also_ends_what_left_the_jobs_session(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, f"[ $HOG_ATTEMPT = 1 ] && {{ setsid sleep 300 >/dev/null 2>&1 & "
                            f"echo $! > {hq.tmp}/p; }}; sleep 1; echo done")
    a = hq.start("--job_file", jobs, "--gpus", "0", "--output_dir", out, "-q")
    wait_for(lambda: (hq.tmp / "p").exists() and (hq.tmp / "p").read_text().strip(),
             timeout=20, what="the job's escaper")
    escaper = int((hq.tmp / "p").read_text())
    os.killpg(a.pid, signal.SIGKILL)
    a.wait(10)
    assert pid_alive(escaper)
    b = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out, "--grace", "1",
               timeout=40)
    assert b.returncode == 0, b.stderr
    assert not pid_alive(escaper)
    assert status_counts(out) == {"succeeded": 1}
    assert markers(job_dir(hq.tmp, 0, output="out")) == ["SUCCESS"]


@pytest.mark.timeout(60)
def test_when_a_slot_process_is_killed_what_left_its_jobs_group_is_ended_too(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, f"setsid sleep 300 >/dev/null 2>&1 & echo $! > {hq.tmp}/p; "
                            f"sleep 30")
    a = hq.start("--job_file", jobs, "--gpus", "0", "--output_dir", out, "-q")
    wait_for(lambda: running_rows(out) and (hq.tmp / "p").exists()
             and (hq.tmp / "p").read_text().strip(), timeout=20, what="the job's escaper")
    escaper = int((hq.tmp / "p").read_text())
    slot = int(Path(f"/proc/{running_rows(out)[0]['pid']}/stat").read_text()
               .rsplit(")", 1)[1].split()[1])
    os.kill(slot, signal.SIGKILL)
    assert a.wait(30) == 1, a.output          # the job was interrupted
    assert not pid_alive(escaper)
    assert status_counts(out) == {"interrupted": 1}


@pytest.mark.timeout(60)
def test_a_survivor_waits_for_the_dead_runners_slot_to_finish_writing_a_folder(hq):
    """The killed runner's slots still end their jobs (these ignore SIGTERM: KILL after
    the grace) and record them; the survivor settles each only once that is written."""
    out, n = hq.tmp / "out", 4
    # (3 s: A's jobs still run when it is killed and its grace is over; the jobs A had
    # handed to its busy slots reach B only once A gives them back, on its next tick)
    jobs = job_file(hq.tmp, *[f"trap '' TERM; {ledger_job(hq.tmp, 3)}"] * n)
    a = hq.start("--job_file", jobs, "--gpus", "0,1", "--output_dir", out, "-q",
                 "--grace", "1")
    wait_for(lambda: len(running_rows(out)) == 2, timeout=20, what="runner A running 2 jobs")
    b = hq.start("--job_file", jobs, "--gpus", "2", "--output_dir", out, "-q", "--grace", "1")
    wait_for(lambda: len({r["runner"] for r in running_rows(out)}) == 2, timeout=20,
             what="runner B running a job too")
    a_id = next(r["id"] for r in runner_rows(out) if r["pid"] == a.pid)
    a_jobs = [r["id"] for r in running_rows(out) if r["runner"] == a_id]
    a.signal(signal.SIGKILL)
    a.wait(10)
    assert b.wait(40) == 0, b.output
    assert "recovered" in b.output
    assert status_counts(out) == {"succeeded": n}
    seen = assert_exactly_once(hq.tmp, n)
    for i in a_jobs:
        folder = job_dir(hq.tmp, i, output="out")
        assert seen[(f"job_{i}", "start")] == 2
        assert markers(folder) == ["SUCCESS"] and (folder / "FAILURE.1").exists()
        assert info(folder)["attempt"] == 2


def test_of_two_runners_recovering_one_dead_runners_jobs_only_one_settles_each(tmp_path):
    store = Store(str(tmp_path / ".hog"))
    try:
        ids = store.add([Job(index=0, command=c) for c in ("a", "b")])
        dead = store.register_runner("0")
        for job_id in ids:
            assert store.claim(job_id, 0, dead, 0, "0") == 1
        store.db.execute("UPDATE runners SET host = 'gone-host', heartbeat = 0 WHERE id = ?",
                         (dead,))
        assert store.orphans_left()
        first, second = store.orphans(), store.orphans()   # both read before either acts
        assert [r.id for r in first] == [r.id for r in second] == ids
        done = store.requeue_orphans([(r, None, {}) for r in first])
        assert [(row.id, s) for row, s in done] == [(i, "interrupted") for i in ids]
        assert store.still_orphans(second) == []
        assert store.requeue_orphans([(r, "succeeded", {}) for r in second]) == []
        assert sorted(r.id for r in store.rows_with_status("queued")) == ids
        assert not store.orphans_left()
    finally:
        store.close()
