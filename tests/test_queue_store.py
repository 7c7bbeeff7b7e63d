"""The store: one SQLite file per sweep, the single source of truth.

WAL mode, a versioned schema (a database of the first version still opens and
resumes), every job transition recorded with what its folder says, recovery
that trusts the folders, and a private state directory hog refuses to use
when others could write to it.
"""
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

import hog.state.store  # noqa: E402 (after the harness, which puts this worktree first)
from hog.state.store import SCHEMA_VERSION  # noqa: E402
from tests.harness import CHECKOUT as ROOT
from tests.harness import (
    DATA,
    connect,
    counts_of,
    db_path,
    dead_pid,
    host,
    info,
    job_dir,
    job_dirs,
    job_file,
    job_rows,
    marker,
    query,
    status_counts,
    wait_for,
)

assert Path(hog.state.store.__file__).resolve().parents[2] == ROOT, "tests must import this hog"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def run_sweep(hq, jobs, out, *more, gpus="0"):
    return hq.run("--job_file", jobs, "--gpus", gpus, "--output_dir", out, *more)


# ----------------------------------------------------------------- the file
def test_the_store_is_an_sqlite_file_in_wal_mode_with_the_current_schema_version(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, "true")
    r = run_sweep(hq, jobs, out)
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(str(db_path(out)))
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    assert hq.status(out)["schema_version"] == SCHEMA_VERSION


def test_state_dir_is_0700_and_database_0600_even_with_a_permissive_umask(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, "true")
    r = hq.popen(["bash", "-c", 'umask 000; exec "$@"', "bash",
                  *hq.argv("--job_file", jobs, "--gpus", "0", "--output_dir", out)])
    assert r.wait(60) == 0
    assert mode(out / ".hog") == 0o700
    assert mode(db_path(out)) == 0o600
    for extra in ("-wal", "-shm"):       # SQLite's side files, while they exist
        side = Path(str(db_path(out)) + extra)
        if side.exists():
            assert mode(side) & 0o077 == 0, f"{side} is mode {mode(side):o}"


# ----------------------------------------------------------------- transitions
def test_every_transition_is_recorded_and_matches_the_job_folders(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, *[
        "while [ ! -e go ]; do sleep 0.02; done",   # 0: holds the only slot until told
        "exit 3",                                    # 1: fails
        "kill -KILL $$",                             # 2: killed by a signal
        "echo fine",                                 # 3: succeeds
    ])
    runner = hq.start("--job_file", jobs, "--gpus", "5", "--output_dir", out)
    wait_for(lambda: len(job_rows(out)) == 4 and job_rows(out)[0]["pid"],
             what="job 0 running in the store")
    rows = job_rows(out)
    # running: claimed by this runner, on slot 0 / GPU 5, with the pid of the live job
    assert rows[0]["status"] == "running"
    assert rows[0]["attempt"] == 1 and rows[0]["slot"] == 0 and rows[0]["gpus"] == "5"
    assert rows[0]["pid"] in hq.job_pids()
    # (issue 11: the busy slot's next job is claimed as handed, not started)
    assert [rows[i]["status"] for i in (1, 2, 3)] == ["handed", "queued", "queued"]
    assert rows[1]["pid"] is None and rows[1]["slot"] == 0
    runner_row = query(out, "SELECT * FROM runners")[0]
    assert rows[0]["runner"] == runner_row["id"] and runner_row["pid"] == runner.pid
    assert runner_row["ended"] is None and runner_row["host"] == host()

    (hq.tmp / "go").touch()
    assert runner.wait(30) == 1
    rows = job_rows(out)
    expected = {0: ("succeeded", 0, None, "SUCCESS"), 1: ("failed", 3, None, "FAILURE"),
                2: ("failed", None, "SIGKILL", "FAILURE"), 3: ("succeeded", 0, None, "SUCCESS")}
    for i, (status, code, sig, mark) in expected.items():
        row, folder = rows[i], job_dir(hq.tmp, i, output="out")
        data = info(folder)
        assert (row["status"], row["exit_code"], row["signal"]) == (status, code, sig), i
        assert marker(folder) == mark
        assert (data["status"], data["exit_code"], data["signal"]) == (status, code, sig)
        assert row["pid"] == data["pid"] and row["attempt"] == data["attempt"] == 1
        # (issue 11: a short job's start is stored with its end, identity and all)
        assert (row["pgid"], row["sid"], row["proc_start"]) == \
            (data["pgid"], data["pid"], str(data["proc_start"])), i
        assert row["gpus"] == "5" and data["gpus"] == ["5"]
        assert row["started"] <= row["ended"]
    assert query(out, "SELECT ended FROM runners")[0]["ended"] is not None


# ----------------------------------------------------------------- schema v1
def test_a_checked_in_schema_v1_database_opens_shows_its_counts_and_resumes(hq):
    """tests/data/store-v1.sqlite: made by hog with schema 1 from a 3-job sweep,
    `echo zero`, `test -e ok-now || exit 3`, `echo two`; job 1 failed (exit 3)."""
    out = hq.tmp / "out"
    (out / ".hog").mkdir(parents=True)
    os.chmod(out / ".hog", 0o700)
    shutil.copyfile(DATA / "store-v1.sqlite", db_path(out))
    os.chmod(db_path(out), 0o600)

    st = hq.status(out)
    assert {k: n for k, n in st["counts"].items() if n} == {"succeeded": 2, "failed": 1}
    assert [(f["id"], f["status"], f["exit_code"]) for f in st["failed"]] == [(1, "failed", 3)]
    assert st["running"] == [] and all(not r["alive"] for r in st["runners"])
    text = hq.run("status", out)
    assert text.returncode == 0 and "2 succeeded" in text.stdout and "1 failed" in text.stdout

    # The sweep was made from another copy of its job file; this one lives here.
    jobs = job_file(hq.tmp, "echo zero", "test -e ok-now || exit 3", "echo two")
    db = connect(out)
    try:
        assert db.execute("SELECT value FROM meta WHERE key='source'").fetchone()[0] \
            .endswith("/jobs.txt")
        db.execute("UPDATE meta SET value = ? WHERE key = 'source'", (f"text:{jobs}",))
    finally:
        db.close()
    (hq.tmp / "ok-now").touch()
    r = run_sweep(hq, jobs, out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped 2" in r.stdout + r.stderr
    # only the failed job ran again; the two that had succeeded were not run
    assert [p.name for p in job_dirs(hq.tmp, output="out")] == ["job_1"]
    assert marker(job_dir(hq.tmp, 1, output="out")) == "SUCCESS"
    assert info(job_dir(hq.tmp, 1, output="out"))["attempt"] == 2
    assert status_counts(out) == {"succeeded": 3}
    db = sqlite3.connect(str(db_path(out)))
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        db.close()


# ----------------------------------------------------------------- recovery
def test_recovery_trusts_a_success_marker_of_a_job_left_running_by_a_dead_runner(hq):
    """A crash between the job's SUCCESS and the store's update: the store still
    says 'running' for a runner that is gone. SUCCESS on disk wins: the job is
    recorded succeeded and not run again; a job without a marker runs again."""
    out = hq.tmp / "out"
    ran = hq.tmp / "ran.txt"
    jobs = job_file(hq.tmp, *[f"echo $HOG_JOB_INDEX >> {ran}" for _ in range(3)])
    assert run_sweep(hq, jobs, out).returncode == 0
    success_1 = os.stat(job_dir(hq.tmp, 1, output="out") / "SUCCESS").st_mtime_ns
    os.remove(job_dir(hq.tmp, 2, output="out") / "SUCCESS")     # job 2 "crashed" before its marker

    db = connect(out)
    try:
        cur = db.execute("INSERT INTO runners (pid, host, proc_start, gpus, started, heartbeat) "
                         "VALUES (?, ?, '', '0', 1.0, 1.0)", (dead_pid(), host()))
        db.execute("UPDATE jobs SET status = 'running', runner = ? WHERE id IN (1, 2)",
                   (cur.lastrowid,))
    finally:
        db.close()
    text = hq.run("status", out).stdout
    assert "running:" in text and "its runner is gone" in text

    r = run_sweep(hq, jobs, out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "recovered 2 job(s)" in r.stderr
    rows = job_rows(out)
    assert rows[1]["status"] == "succeeded" and "recovered" in rows[1]["note"]
    assert os.stat(job_dir(hq.tmp, 1, output="out") / "SUCCESS").st_mtime_ns == success_1
    assert rows[2]["status"] == "succeeded" and rows[2]["attempt"] == 2
    assert counts_of(ran) == {"0": 1, "1": 1, "2": 2}
    assert all(marker(job_dir(hq.tmp, i, output="out")) == "SUCCESS" for i in range(3))


def test_a_job_recovered_from_its_folder_gets_the_folders_exit_code_and_end_time(hq):
    """The exact state of a crash after the job's SUCCESS but before the store
    recorded the end: running, no exit code, no end time. After recovery the
    row says what the folder says."""
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, "true", "true")
    assert run_sweep(hq, jobs, out).returncode == 0
    db = connect(out)
    try:
        cur = db.execute("INSERT INTO runners (pid, host, proc_start, gpus, started, heartbeat) "
                         "VALUES (?, ?, '', '0', 1.0, 1.0)", (dead_pid(), host()))
        db.execute("UPDATE jobs SET status = 'running', runner = ?, exit_code = NULL, "
                   "signal = NULL, ended = NULL WHERE id = 1", (cur.lastrowid,))
    finally:
        db.close()
    r = run_sweep(hq, jobs, out)
    assert r.returncode == 0, r.stdout + r.stderr
    row, folder_info = job_rows(out)[1], info(job_dir(hq.tmp, 1, output="out"))
    assert row["status"] == folder_info["status"] == "succeeded"
    assert info(job_dir(hq.tmp, 1, output="out"))["attempt"] == 1                 # not run again
    assert (row["exit_code"], row["signal"]) == (folder_info["exit_code"],
                                                 folder_info["signal"]) == (0, None)
    assert row["ended"] is not None


# ----------------------------------------------------------------- safety
@pytest.mark.parametrize("command", ["status", "add", "run"])
@pytest.mark.parametrize("target,bad_mode", [(".hog", 0o770), (".hog", 0o707),
                                             (".hog/hog.sqlite", 0o620),
                                             (".hog/hog.sqlite", 0o606)],
                         ids=["dir-g+w", "dir-o+w", "db-g+w", "db-o+w"])
def test_a_queue_others_can_write_to_is_refused_with_exit_2_naming_the_path(
        hq, target, bad_mode, command):
    out = hq.tmp / "out"
    ran = hq.tmp / "ran.txt"
    jobs = job_file(hq.tmp, "true")
    # the queue (made private by hog) holds a job waiting for the next runner
    assert hq.run("add", out, "--", f"echo queued >> {ran}").returncode == 0
    assert mode(out / ".hog") == 0o700 and mode(db_path(out)) == 0o600
    path = out / target
    os.chmod(path, bad_mode)
    if command == "status":
        r = hq.run("status", out)
    elif command == "add":
        r = hq.run("add", out, "--", f"echo added >> {ran}")
    else:                               # a runner: it must not run the queued job
        r = run_sweep(hq, jobs, out)
    assert r.returncode == 2, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert str(path) in r.stderr and "writable by group or others" in r.stderr
    assert not ran.exists(), "a job ran from a queue others can write to"
    assert mode(path) == bad_mode, "hog changed the mode instead of refusing"
    os.chmod(path, 0o700 if target == ".hog" else 0o600)
    assert status_counts(out) == {"queued": 1}
