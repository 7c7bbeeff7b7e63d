"""The counts the store keeps (``job_counts``, schema version 4) always equal a full
count of its jobs, whatever changed them: hog add, a reading of the source (new,
changed and vanished jobs, resume), claim, start, end, retry, cancel, recovery after
a crash, hog rebuild, --fresh, and the migration of an older queue. And the reads
that use them never scan the jobs."""
import os
import re
import shutil
import sqlite3
from typing import Dict, Tuple

import pytest

from hog.model import Job, Status
from hog.state.rows import IN_SOURCE_SQL, RUNNABLE_SQL
from hog.state.schema import SCHEMA_VERSION
from hog.state.store import Store
from tests.harness import DATA, db_path, job_file

Counts = Tuple[Dict[str, int], Dict[str, int], int]


def kept(store: Store) -> Counts:
    return store.counts(), store.gone_counts(), store.runnable_count()


def scanned(store: Store) -> Counts:
    """The same three by a count of every row (a job handed ahead to a busy slot has not
    started: it shows as queued)."""
    db = store.db
    shown = "CASE status WHEN 'handed' THEN 'queued' ELSE status END"
    return (dict(db.execute(f"SELECT {shown}, count(*) FROM jobs GROUP BY 1")),
            dict(db.execute(f"SELECT {shown}, count(*) FROM jobs WHERE NOT {IN_SOURCE_SQL} "
                            f"GROUP BY 1")),
            db.execute(f"SELECT count(*) FROM jobs WHERE {RUNNABLE_SQL}").fetchone()[0])


def check(store: Store) -> Counts:
    now = kept(store)
    assert now == scanned(store)
    return now


def jobs(*commands: str, name_prefix: str = "") -> list:
    return [Job(index=i, command=c, where=f"jobs.txt:{i + 1}",
                name=f"{name_prefix}{i}" if name_prefix else None)
            for i, c in enumerate(commands)]


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "out" / ".hog"))
    yield s
    s.close()


def test_counts_follow_add_claim_start_end_retry_and_cancel(store):
    assert check(store) == ({}, {}, 0)
    ids = store.add(jobs(*[f"echo {i}" for i in range(6)]))
    assert check(store) == ({"queued": 6}, {}, 6)
    runner = store.register_runner("0,1")
    for n, jid in enumerate(ids[:4]):
        assert store.claim(jid, 0, runner, n % 2, str(n % 2)) == 1
        store.started(jid, 1000 + n, 1.0)
    assert check(store)[0] == {"queued": 2, "running": 4}
    store.ended(ids[0], Status.SUCCEEDED, 0, None, 1.0, 2.0)
    store.ended(ids[1], Status.FAILED, 3, None, 1.0, 2.0)
    store.ended(ids[2], Status.FAILED, 1, None, 1.0, 2.0, requeue=True)    # a retry
    store.set_status(ids[3], Status.TIMEOUT, "too long")
    assert check(store)[0] == {"queued": 3, "succeeded": 1, "failed": 1, "timeout": 1}
    assert store.retry([ids[1], ids[3], ids[0]]) == [ids[1], ids[3]]
    assert check(store)[0] == {"queued": 5, "succeeded": 1}
    assert store.cancel(ids[4]) == "cancelled"
    assert check(store) == ({"queued": 4, "succeeded": 1, "cancelled": 1}, {}, 4)


def test_counts_follow_every_status_a_job_can_take(store):
    ids = store.add(jobs(*[f"echo {s.value}" for s in Status]))
    for jid, status in zip(ids, Status):
        store.set_status(jid, status)
    counts, _, runnable = check(store)
    assert counts == {**{s.value: 1 for s in Status if s.value != "handed"}, "queued": 2}
    assert runnable == 1


def test_counts_follow_readings_of_the_source_changes_vanished_jobs_and_resume(store):
    first = jobs("echo a", "echo b", "echo c", name_prefix="n") + [
        Job(index=3, command="echo y", where="jobs.txt:4")]
    store.begin_reading()
    assert store.ingest(first, resume=False) == (4, 0, 0)
    assert store.end_reading() == 0
    check(store)
    runner = store.register_runner("0")
    for jid in (0, 1):
        store.claim(jid, 0, runner, 0, "0")
        store.ended(jid, Status.FAILED if jid else Status.SUCCEEDED, jid, None, 1, 2)
    # the second reading: n1 changed, n2 and the unnamed job left, a new job came
    store.begin_reading()
    check(store)        # nothing listed yet: the queued ones are not runnable meanwhile
    edited = [first[0], Job(index=1, command="echo B", name="n1"), Job(index=2, command="new")]
    store.ingest(edited, resume=True)
    assert store.end_reading() == 2
    counts, gone, runnable = check(store)
    assert gone == {"queued": 2} and runnable == 2
    assert counts == {"succeeded": 1, "queued": 4}
    # a third reading lists the first jobs again
    store.begin_reading()
    store.ingest(first, resume=True)
    store.end_reading()
    check(store)


def test_counts_follow_recovery_of_the_jobs_of_a_dead_runner(store):
    ids = store.add(jobs("a", "b", "c"))
    dead = store.register_runner("0,1,2")
    for n, jid in enumerate(ids):
        store.claim(jid, 0, dead, n, str(n))
    store.db.execute("UPDATE runners SET pid = 999999999 WHERE id = ?", (dead,))
    done = store.recover(lambda row: ("succeeded", {"exit_code": 0}) if row.id == ids[0]
                         else None)
    assert sorted(s for _, s in done) == ["interrupted", "interrupted", "succeeded"]
    assert check(store) == ({"succeeded": 1, "queued": 2}, {}, 2)


def test_counts_survive_a_transaction_that_is_rolled_back(store):
    store.add(jobs("a"))

    def bad():
        yield Job(index=0, command="b")
        raise ValueError("a bad line")

    with pytest.raises(ValueError):
        store.add_stream(bad())
    assert check(store) == ({"queued": 1}, {}, 1)


def test_a_schema_v1_queue_is_migrated_with_its_jobs_counted(tmp_path):
    state = tmp_path / "out" / ".hog"
    state.mkdir(parents=True, mode=0o700)
    shutil.copyfile(DATA / "store-v1.sqlite", state / "hog.sqlite")
    os.chmod(state / "hog.sqlite", 0o600)
    store = Store(str(state), create=False)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert check(store)[0] == {"succeeded": 2, "failed": 1}
        assert store.retry([1]) == [1]
        assert check(store)[0] == {"succeeded": 2, "queued": 1}
    finally:
        store.close()


def test_a_schema_v3_queue_is_migrated_with_its_jobs_counted(tmp_path, monkeypatch):
    state = tmp_path / "out" / ".hog"
    state.mkdir(parents=True, mode=0o700)
    shutil.copyfile(DATA / "store-v1.sqlite", state / "hog.sqlite")
    os.chmod(state / "hog.sqlite", 0o600)
    with monkeypatch.context() as m:            # what a hog of schema 3 made of it
        m.setattr("hog.state.db.SCHEMA_VERSION", 3)
        Store(str(state), create=False).close()
    db = sqlite3.connect(state / "hog.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    db.execute("UPDATE jobs SET status = 'queued' WHERE status = 'succeeded' AND id = "
               "(SELECT min(id) FROM jobs WHERE status = 'succeeded')")
    db.commit()
    db.close()
    store = Store(str(state), create=False)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert check(store)[0] == {"succeeded": 1, "queued": 1, "failed": 1}
    finally:
        store.close()


def reopened(out) -> Store:
    return Store(str(db_path(out).parent), create=False)


def test_counts_match_after_a_real_sweep_a_rebuild_and_a_fresh_start(hq):
    out = hq.tmp / "out"
    jf = job_file(hq.tmp, "true", "exit 3", "true", "true")
    r = hq.run("--job_file", jf, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 1, r.stdout + r.stderr
    store = reopened(out)
    assert check(store)[0] == {"succeeded": 3, "failed": 1}
    store.close()
    r = hq.run("rebuild", out, "--force")
    assert r.returncode == 0, r.stdout + r.stderr
    store = reopened(out)
    assert check(store)[0] == {"succeeded": 3, "failed": 1}
    store.close()
    r = hq.run("add", out, "--", "true")
    assert r.returncode == 0, r.stdout + r.stderr
    r = hq.run("--job_file", job_file(hq.tmp, "true", "true", name="two.txt"), "--gpus", "0",
               "--output_dir", out, "--fresh")
    assert r.returncode == 0, r.stdout + r.stderr
    store = reopened(out)
    assert check(store)[0] == {"succeeded": 2}
    store.close()


def test_the_reads_of_counts_never_scan_the_jobs(store):
    """Each count is a search of the small count table, whatever the number of jobs."""
    store.add(jobs(*["true"] * 50))
    traced = []
    store.db.set_trace_callback(traced.append)
    kept(store)
    store.end_reading()
    store.db.set_trace_callback(None)
    selects = [s for s in traced if s.lstrip().upper().startswith("SELECT")]
    assert selects
    for sql in selects:
        plan = " | ".join(r[3] for r in store.db.execute(f"EXPLAIN QUERY PLAN {sql}",
                                                           _args_for(sql)))
        assert "jobs" not in plan.replace("job_counts", ""), (sql, plan)


def _args_for(sql: str) -> tuple:
    return (0,) * sql.count("?")


def test_a_statement_split_inside_a_trigger_body_is_run_whole(store):
    store._execute_script("CREATE TEMP TABLE t (x); CREATE TEMP TRIGGER tt AFTER INSERT ON t "
                          "BEGIN INSERT INTO t (x) SELECT 2 WHERE new.x = 1; END; "
                          "INSERT INTO t (x) VALUES (1)")
    assert sorted(store.db.execute("SELECT x FROM t")) == [(1,), (2,)]
    store._execute_script("")       # an empty migration (a placeholder) does nothing


def test_the_count_table_is_in_the_schema_with_its_triggers(store):
    store.add(jobs("a"))
    names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master")}
    assert {"job_counts", "job_counts_insert", "job_counts_update",
            "job_counts_delete"} <= names
    with pytest.raises(sqlite3.IntegrityError):     # one row per status and reading
        store.db.execute("INSERT INTO job_counts (status, seen, n) VALUES ('queued', -1, 1)")


def test_no_turn_of_the_runner_scans_every_job(tmp_path):
    """Every statement the runner runs while jobs start, end, and are added from another
    shell searches an index (or the count table); none reads every job."""
    from tests.test_engine_loop import Engines  # the stepped runner of the loop tests
    made = Engines(str(tmp_path / "out"))
    e = made.make([f"true {i}" for i in range(300)], slots=("0", "1"))
    traced = []
    e.st.store.db.set_trace_callback(traced.append)
    try:
        other = Store(e.st.layout.state_dir)
        for n in range(6):
            e.settle()
            if n == 2:
                other.add(jobs("echo added"))
                assert other.cancel(299) == "cancelled"
            for slot in list(e.backend.attempts):
                e.backend.end_job(slot, Status.FAILED if n == 3 else Status.SUCCEEDED)
            e.tick()
        other.close()
    finally:
        e.st.store.db.set_trace_callback(None)
        made.finish(e)
    statements = {s for s in traced if s.lstrip().split(" ", 1)[0].upper() in
                  ("SELECT", "UPDATE", "DELETE", "INSERT")}
    assert any("FROM jobs" in s for s in statements)
    assert any("FROM job_counts" in s for s in statements)     # counted: refresh, summary
    counted = [s for s in statements if re.search(r"(count|sum)\(.*FROM jobs\b", s, re.S)]
    assert counted == [], "jobs counted row by row"
    db = sqlite3.connect(str(tmp_path / "out" / ".hog" / "hog.sqlite"))
    try:
        for sql in statements:
            plan = [r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            scans = [p for p in plan if p.split()[:2] in (["SCAN", "jobs"], ["SCAN", "j"])
                     and p != "SCAN jobs USING INDEX jobs_queue"]   # (queued jobs alone)
            assert scans == [], (sql, plan)
    finally:
        db.close()


def test_hog_status_reads_the_first_jobs_of_a_status_without_sorting_them_all(store):
    store.add(jobs(*["false"] * 20))
    traced = []
    store.db.set_trace_callback(traced.append)
    store.rows_with_status("failed", 5)
    store.rows_with_status("running")
    store.db.set_trace_callback(None)
    for sql in traced:
        plan = [r[3] for r in store.db.execute(f"EXPLAIN QUERY PLAN {sql}")]
        assert plan[0] == "SEARCH jobs USING INDEX jobs_by_status_id (status=?)", plan
        assert not any("TEMP B-TREE" in p for p in plan), plan


def test_the_runners_reading_of_the_queue_takes_the_first_in_run_order_without_a_sort(store):
    store.add(jobs(*["true"] * 30))
    for i in (3, 7):                                # a job's end leaves the run-order index
        assert store.claim(i, 0, 1, 0, "0") == 1
        store.ended(i, Status.SUCCEEDED, 0, None, 1.0, 2.0)
    traced = []
    store.db.set_trace_callback(traced.append)
    rows = store.queued(5)
    store.db.set_trace_callback(None)
    assert [r.id for r in rows] == [0, 1, 2, 4, 5]
    plan = [r[3] for r in store.db.execute(f"EXPLAIN QUERY PLAN {traced[0]}")]
    assert plan[0] == "SCAN jobs USING INDEX jobs_queue", plan     # queued jobs alone
    assert not any("TEMP B-TREE" in p for p in plan), plan


def test_the_latest_finished_jobs_are_read_from_the_end_without_sorting_them_all(store):
    """``hog status --json``'s ``finished``, the attached view's ended jobs and its mean
    duration: read from the index of when jobs ended (schema version 9), not by sorting
    or scanning every job."""
    ids = store.add(jobs(*["true"] * 12))
    runner = store.register_runner("0")
    for n, jid in enumerate(ids[:10]):
        assert store.claim(jid, 0, runner, 0, "0") == 1
        status = Status.FAILED if n % 3 == 0 else Status.SUCCEEDED
        store.ended(jid, status, 0, None, 1.0, 100.0 - n)      # the later, the earlier
    store.ended(ids[9], Status.FAILED, 1, None, 1.0, 50.0, requeue=True)   # queued again
    traced = []
    store.db.set_trace_callback(traced.append)
    latest = store.latest_ended(["succeeded", "failed"], 4)
    since = store.ended_since(93.5)
    recent = store.duration_stats(latest=3)     # the mean for a time left: recent jobs
    store.db.set_trace_callback(None)
    assert [r.id for r in latest] == [ids[0], ids[1], ids[2], ids[3]]
    assert [r.id for r in since] == [ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]]
    assert recent == (3, (100.0 - 1.0) + (99.0 - 1.0) + (98.0 - 1.0))
    for sql in traced:
        plan = [r[3] for r in store.db.execute(f"EXPLAIN QUERY PLAN {sql}")]
        searches = [p for p in plan if " jobs " in p]     # (not the subquery's own scan)
        assert searches and searches[0].startswith("SEARCH jobs USING INDEX jobs_by_end"), \
            (sql, plan)
        assert not any("TEMP B-TREE" in p for p in plan), plan
