"""Job identity by content: what a user sees when the source of a sweep is edited
between runs.

A job is its ``name`` when it has one, otherwise its command and options with the
number of identical jobs before it in the source; its folder number is given when
hog first sees it and never reused. Each test runs ``python -m hog`` more than
once on one output directory, with jobs that append to a ledger outside it, so the
ledger tells how often each command ran and in which folder (``$HOG_JOB_INDEX``).
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap

from hog.model import Job
from hog.state.identity import Occurrences, canonical_text, definition_digest, job_digest
from hog.state.rows import job_spec
from hog.state.schema import SCHEMA_V1, SCHEMA_VERSION
from hog.state.store import Store
from tests.harness import (
    DATA,
    counts_of,
    db_path,
    hog_env,
    info,
    job_dir,
    job_dirs,
    job_file,
    job_rows,
    lines_of,
    marker,
    running_rows,
    status_counts,
    wait_for,
    write,
)
from tests.harness import out as job_out


def run_sweep(hq, jobs, *more, gpus="0"):
    return hq.run("--job_file", jobs, "--gpus", gpus, "--output_dir", hq.tmp / "out",
                  "--display", "plain", *more)


def folders(hq):
    return [p.name for p in job_dirs(hq.tmp, output="out")]


def folder(hq, n):
    return job_dir(hq.tmp, n, output="out")


def said(r) -> str:
    return r.stdout + r.stderr


def logged(ledger, word: str) -> str:
    """A command that appends ``word@<its folder number>`` to the ledger."""
    return f"echo {word}; echo {word}@$HOG_JOB_INDEX >> {ledger}"


# ------------------------------------------------------------------ text files
def test_a_line_inserted_at_the_top_runs_only_that_line_in_the_next_folder(hq):
    ledger = hq.tmp / "ledger"
    jobs = job_file(hq.tmp, logged(ledger, "b"), logged(ledger, "c"), logged(ledger, "d"))
    first = run_sweep(hq, jobs, gpus="0,1")
    assert first.returncode == 0, said(first)
    kept = {n: (folder(hq, n) / "INFO").stat().st_mtime_ns for n in range(3)}

    job_file(hq.tmp, logged(ledger, "a"), logged(ledger, "b"), logged(ledger, "c"),
             logged(ledger, "d"))
    second = run_sweep(hq, jobs, gpus="0,1")
    assert second.returncode == 0, said(second)
    assert "skipped 3 job(s) that already succeeded" in said(second)
    # each command ran exactly once, each in its own folder; the new one in the next
    assert sorted(lines_of(ledger)) == ["a@3", "b@0", "c@1", "d@2"]
    assert folders(hq) == ["job_0", "job_1", "job_2", "job_3"]
    assert [job_out(folder(hq, n)) for n in range(4)] == ["b\n", "c\n", "d\n", "a\n"]
    assert {n: (folder(hq, n) / "INFO").stat().st_mtime_ns for n in range(3)} == kept
    assert all(sorted(os.listdir(folder(hq, n))) == ["INFO", "SUCCESS", f"job_{n}.ERR",
                                                     f"job_{n}.OUT"] for n in range(4))

    third = run_sweep(hq, jobs, gpus="0,1")      # the same file once more: nothing runs
    assert third.returncode == 0 and "nothing left to do" in said(third)
    assert len(lines_of(ledger)) == 4


def test_lines_reordered_and_a_comment_added_run_nothing_again(hq):
    ledger = hq.tmp / "ledger"
    jobs = job_file(hq.tmp, logged(ledger, "x"), logged(ledger, "y"))
    assert run_sweep(hq, jobs).returncode == 0
    job_file(hq.tmp, "# the sweep, reordered", logged(ledger, "y"), "", logged(ledger, "x"))
    r = run_sweep(hq, jobs)
    assert r.returncode == 0 and "nothing left to do" in said(r), said(r)
    assert sorted(lines_of(ledger)) == ["x@0", "y@1"]
    # the store follows the source: where each job now is
    rows = job_rows(hq.tmp / "out")
    assert rows[0]["origin"].endswith(":4") and rows[1]["origin"].endswith(":2")
    assert (rows[0]["source_pos"], rows[1]["source_pos"]) == (1, 0)


# ------------------------------------------------------------------------ YAML
GRID = """\
defaults: {{gpus: 0}}
jobs:
  - {{cmd: "echo prep; echo prep@$HOG_JOB_INDEX >> {ledger}", name: prep}}
  - sweep:
      cmd: "echo lr={{lr}} seed={{seed}}; echo lr={{lr}},seed={{seed}}@$HOG_JOB_INDEX >> {ledger}"
      name: train-{{lr}}-{{seed}}
      grid: {{lr: [0.1, 0.01], seed: [{seeds}]}}
      after: [prep]
"""


def test_a_yaml_grid_with_one_more_seed_runs_only_the_new_jobs(hq):
    ledger = hq.tmp / "ledger"
    sweep = write(hq.tmp / "sweep.yaml", GRID.format(ledger=ledger, seeds="1, 2"))
    assert run_sweep(hq, sweep).returncode == 0
    assert len(lines_of(ledger)) == 5

    write(sweep, GRID.format(ledger=ledger, seeds="1, 2, 3"))
    r = run_sweep(hq, sweep)
    assert r.returncode == 0, said(r)
    assert "skipped 5 job(s) that already succeeded" in said(r) and ", 2 new" in said(r)
    # the two new points ran once each, in folders 5 and 6; the rest never again
    assert sorted(lines_of(ledger)) == sorted([
        "prep@0", "lr=0.1,seed=1@1", "lr=0.1,seed=2@2", "lr=0.01,seed=1@3",
        "lr=0.01,seed=2@4", "lr=0.1,seed=3@5", "lr=0.01,seed=3@6"])
    assert folders(hq) == [f"job_{n}" for n in range(7)]
    assert [info(folder(hq, n))["name"] for n in (5, 6)] == ["train-0.1-3", "train-0.01-3"]
    assert all(info(folder(hq, n))["attempt"] == 1 for n in range(7))


def test_a_job_inserted_before_an_unnamed_yaml_sweep_runs_alone(hq):
    """hog names an unnamed sweep's jobs after its entry (sweep0-a=x, then sweep1-a=x):
    that name is not their identity, so they are found again, and renamed."""
    ledger = hq.tmp / "ledger"
    grid = f'  - sweep: {{cmd: "echo {{a}}@$HOG_JOB_INDEX >> {ledger}", grid: {{a: [x, y]}}}}\n'
    sweep = write(hq.tmp / "sweep.yaml", "defaults: {gpus: 0}\njobs:\n" + grid)
    assert run_sweep(hq, sweep).returncode == 0
    write(sweep, "defaults: {gpus: 0}\njobs:\n" + f"  - echo first@$HOG_JOB_INDEX >> {ledger}\n"
          + grid)
    r = run_sweep(hq, sweep)
    assert r.returncode == 0, said(r)
    assert sorted(lines_of(ledger)) == ["first@2", "x@0", "y@1"]
    assert [row["name"] for row in job_rows(hq.tmp / "out").values()] == [
        "sweep1-a=x", "sweep1-a=y", None]


def test_options_that_do_not_change_what_runs_never_run_a_finished_job_again(hq):
    """priority, retries, timeout (and a job's place in the file) are not part of its
    identity; env, cwd and gpus are: changing one is a new job."""
    ledger = hq.tmp / "ledger"
    sweep = write(hq.tmp / "sweep.yaml", textwrap.dedent(f"""\
        defaults: {{gpus: 0}}
        jobs:
          - "echo one@$HOG_JOB_INDEX >> {ledger}"
          - {{cmd: "echo two@$HOG_JOB_INDEX >> {ledger}", env: {{A: "1"}}}}
        """))
    assert run_sweep(hq, sweep).returncode == 0
    write(sweep, textwrap.dedent(f"""\
        defaults: {{gpus: 0, retries: 2, timeout: 1h, priority: 5}}
        jobs:
          - {{cmd: "echo two@$HOG_JOB_INDEX >> {ledger}", env: {{A: "2"}}}}
          - "echo one@$HOG_JOB_INDEX >> {ledger}"
        """))
    r = run_sweep(hq, sweep)
    assert r.returncode == 0, said(r)
    assert sorted(lines_of(ledger)) == ["one@0", "two@1", "two@2"]
    st = hq.status(hq.tmp / "out")
    assert st["not_in_source"] == 1 and st["not_in_source_counts"] == {"succeeded": 1}
    spec = json.loads(job_rows(hq.tmp / "out")[0]["spec"])     # the new options are kept
    assert (spec["retries"], spec["timeout"], spec["priority"]) == (2, 3600, 5)


# ------------------------------------------------------------------ named jobs
def test_a_named_job_whose_command_changed_runs_again_as_a_new_attempt_in_its_folder(hq):
    ledger = hq.tmp / "ledger"
    jobs = job_file(hq.tmp, logged(ledger, "v1") + "  # hog: name=train",
                    logged(ledger, "other"))
    assert run_sweep(hq, jobs).returncode == 0

    job_file(hq.tmp, logged(ledger, "new") + "  # hog: name=eval",
             logged(ledger, "v2") + "  # hog: name=train", logged(ledger, "other"))
    r = run_sweep(hq, jobs)
    assert r.returncode == 0, said(r)
    assert sorted(lines_of(ledger)) == ["new@2", "other@1", "v1@0", "v2@0"]
    train = folder(hq, 0)
    assert info(train)["attempt"] == 2 and info(train)["name"] == "train"
    assert job_out(train) == "v2\n" and (train / "job_0.1.OUT").read_text() == "v1\n"
    assert "v1" in (train / "INFO.1").read_text() and marker(train) == "SUCCESS"
    assert sorted(os.listdir(folder(hq, 1))) == ["INFO", "SUCCESS", "job_1.ERR", "job_1.OUT"]


def test_two_jobs_of_one_name_stay_two_jobs(hq):
    ledger = hq.tmp / "ledger"
    jobs = job_file(hq.tmp, logged(ledger, "a") + "  # hog: name=x",
                    logged(ledger, "b") + "  # hog: name=x")
    assert run_sweep(hq, jobs).returncode == 0
    assert run_sweep(hq, jobs).returncode == 0
    assert sorted(lines_of(ledger)) == ["a@0", "b@1"]
    assert status_counts(hq.tmp / "out") == {"succeeded": 2}


# ---------------------------------------------------------- jobs that left it
def test_a_job_removed_from_the_source_is_kept_shown_and_not_counted(hq):
    ledger, out = hq.tmp / "ledger", hq.tmp / "out"
    jobs = job_file(hq.tmp, logged(ledger, "good"), logged(ledger, "bad") + "; exit 3",
                    logged(ledger, "fine"))
    assert run_sweep(hq, jobs).returncode == 1
    added = hq.run("add", out, "--", "echo", "added")
    assert added.returncode == 0, said(added)

    job_file(hq.tmp, logged(ledger, "good"), logged(ledger, "fine"))
    r = run_sweep(hq, jobs)
    assert r.returncode == 0, said(r)       # the failed job left the source: exit 0
    assert "1 no longer in the source (kept, not run)" in said(r)
    assert sorted(lines_of(ledger)) == ["bad@1", "fine@2", "good@0"]
    assert marker(folder(hq, 1)) == "FAILURE" and job_out(folder(hq, 1)) == "bad\n"
    assert job_out(folder(hq, 3)) == "added\n"          # hog add's job ran, and stays

    st = hq.status(out)
    assert st["counts"]["failed"] == 1 and st["total"] == 4
    assert st["not_in_source"] == 1 and st["not_in_source_counts"] == {"failed": 1}
    assert [(f["id"], f["in_source"]) for f in st["failed"]] == [(1, False)]
    text = hq.run("status", out).stdout
    assert "1 of them no longer in the source (1 failed)" in text
    assert "(no longer in the source)" in text
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [rec["in_source"] for rec in results] == [True, False, True, True]
    # hog retry --failed leaves it alone; naming it runs it again
    assert "queued 0 job(s)" in hq.run("retry", out, "--failed").stdout
    assert "queued 1 job(s)" in hq.run("retry", out, "job_1").stdout
    assert run_sweep(hq, jobs).returncode == 1
    assert counts_of(ledger)["bad@1"] == 2 and len(lines_of(ledger)) == 4


def test_a_queued_job_removed_from_the_source_never_starts(hq):
    ledger, out, fixed = hq.tmp / "ledger", hq.tmp / "out", hq.tmp / "fixed"
    slow = f"echo slow@$HOG_JOB_INDEX >> {ledger}; test -e {fixed} || sleep 60"
    jobs = job_file(hq.tmp, slow, logged(ledger, "dropped"), logged(ledger, "kept"))
    first = hq.start("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    wait_for(lambda: [r["id"] for r in running_rows(out)] == [0], timeout=20,
             what="the first job running")
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 143
    assert status_counts(out) == {"interrupted": 1, "queued": 2}

    fixed.touch()
    job_file(hq.tmp, slow, logged(ledger, "kept"))
    r = run_sweep(hq, jobs)
    assert r.returncode == 0, said(r)
    assert sorted(lines_of(ledger)) == ["kept@2", "slow@0", "slow@0"]
    assert not folder(hq, 1).exists()
    st = hq.status(out)
    assert st["not_in_source_counts"] == {"queued": 1}
    assert "start one to run" not in hq.run("status", out).stdout


# ---------------------------------------------------------------- duplicates
def test_identical_unnamed_lines_are_separate_jobs_counted_in_order(hq):
    ledger = hq.tmp / "ledger"
    same = f"echo same@$HOG_JOB_INDEX >> {ledger}"
    jobs = job_file(hq.tmp, same, same)
    assert run_sweep(hq, jobs).returncode == 0
    assert sorted(lines_of(ledger)) == ["same@0", "same@1"]

    job_file(hq.tmp, same)                          # one removed: the second one left
    r = run_sweep(hq, jobs)
    assert r.returncode == 0 and "1 no longer in the source" in said(r), said(r)
    assert sorted(lines_of(ledger)) == ["same@0", "same@1"]
    assert hq.status(hq.tmp / "out")["not_in_source"] == 1

    job_file(hq.tmp, same, same, same)              # back, and one more: only that runs
    r = run_sweep(hq, jobs)
    assert r.returncode == 0, said(r)
    assert sorted(lines_of(ledger)) == ["same@0", "same@1", "same@2"]
    assert hq.status(hq.tmp / "out")["not_in_source"] == 0


# ---------------------------------------------------------------- hog.run
def test_a_python_list_grown_at_the_front_runs_only_the_new_item(hq):
    ledger = hq.tmp / "ledger"
    script = write(hq.tmp / "sweep.py", textwrap.dedent(f"""\
        import sys, hog
        words = sys.argv[1:]
        r = hog.run([f"echo {{w}}@$HOG_JOB_INDEX >> {ledger}" for w in words],
                    name="words", gpus="0", output_dir="out", quiet=True)
        sys.exit(r.exit_code)
        """))
    for words in (["b", "c"], ["a", "b", "c"]):
        r = subprocess.run([sys.executable, str(script), *words], cwd=str(hq.tmp),
                           env=hog_env(), stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, said(r)
    assert sorted(lines_of(ledger)) == ["a@2", "b@0", "c@1"]


# ------------------------------------------------------------ schema v1 store
def test_a_v1_store_migrates_and_an_edited_source_skips_what_had_succeeded(hq):
    """tests/data/store-v1.sqlite: `echo zero`, `test -e ok-now || exit 3`,
    `echo two`, made by a hog of schema 1; jobs 0 and 2 succeeded, 1 failed."""
    out = hq.tmp / "out"
    (out / ".hog").mkdir(parents=True)
    os.chmod(out / ".hog", 0o700)
    shutil.copyfile(DATA / "store-v1.sqlite", db_path(out))
    os.chmod(db_path(out), 0o600)
    st = hq.status(out)             # opening it migrates it
    assert st["schema_version"] == SCHEMA_VERSION and st["not_in_source"] == 0
    rows = job_rows(out)
    assert [r["ident"][:4] for r in rows.values()] == ["d:0:"] * 3
    assert all(r["seen"] == 1 and len(r["digest"]) == 24 for r in rows.values())

    # a line inserted at the top of the sweep's job file, now living here
    jobs = job_file(hq.tmp, "echo new", "echo zero", "test -e ok-now || exit 3", "echo two")
    db = sqlite3.connect(str(db_path(out)))
    try:
        with db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'source'", (f"text:{jobs}",))
    finally:
        db.close()
    (hq.tmp / "ok-now").touch()
    r = run_sweep(hq, jobs)
    assert r.returncode == 0, said(r)
    assert "skipped 2 job(s) that already succeeded" in said(r)
    # only the failed job ran again (in its own folder) and the new line, in folder 3
    assert folders(hq) == ["job_1", "job_3"]
    assert info(folder(hq, 1))["attempt"] == 2 and marker(folder(hq, 1)) == "SUCCESS"
    assert job_out(folder(hq, 3)) == "new\n"
    assert status_counts(out) == {"succeeded": 4}


def test_the_migration_gives_old_rows_the_keys_a_reading_of_their_source_gives(tmp_path):
    """Duplicates, names and options of a v1 store: the keys computed in SQL by the
    migration are those the store computes when it reads the same jobs."""
    jobs = [Job(index=0, command="echo a"), Job(index=1, command="echo a", gpus=2),
            Job(index=2, command="echo a"), Job(index=3, command="run", name="x"),
            Job(index=4, command="echo a", env=(("B", "1"), ("A", "2")), cwd="/tmp"),
            Job(index=5, command="other", name="x"), Job(index=6, command="echo a", name="a"),
            Job(index=7, command="echo a", name="sweep2-a=x", auto_name=True),
            Job(index=8, command="echo b", name="sweep2-a=y", auto_name=True),
            Job(index=9, command="echo b", name="sweep-given")]
    state = tmp_path / ".hog"
    state.mkdir(mode=0o700)
    db = sqlite3.connect(str(state / "hog.sqlite"))
    for statement in SCHEMA_V1.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    # stored in another order than the source's, as ids and positions may differ
    for job in reversed(jobs):
        db.execute("INSERT INTO jobs (id, source_pos, name, command, spec, added) "
                   "VALUES (?, ?, ?, ?, ?, 0)", (10 + job.index, job.index, job.name,
                                                job.command, job_spec(job)))
    db.execute("INSERT INTO jobs (id, name, command, added) VALUES (99, NULL, 'echo a', 0)")
    db.execute("INSERT INTO meta (key, value) VALUES ('source', 'yaml:/somewhere/sweep.yaml')")
    db.commit()
    db.close()
    os.chmod(state / "hog.sqlite", 0o600)
    store = Store(str(state))
    try:
        got = {r.id: r.ident for r in store.all_rows()}
        occurrences = Occurrences()
        want = {10 + j.index: occurrences.key(j, job_digest(j)) for j in jobs}
        want[99] = None                                 # added with hog add: no key
        assert got == want
        assert len(set(want.values())) == len(want)     # duplicates told apart
    finally:
        store.close()


def test_a_long_source_read_in_batches_finds_every_job_again_when_its_lines_shift(tmp_path):
    """In the store, as the engine feeds it: 1,400 jobs in batches of 500, each command
    twice (700 lines apart, so duplicates fall in other batches), then the same source
    with a line inserted at the top: one new job, every other found at its new place."""
    store = Store(str(tmp_path / ".hog"))
    try:
        commands = [f"echo {i % 700}" for i in range(1400)]
        for edit in (commands, ["echo new"] + commands):
            store.begin_reading()
            jobs = [Job(index=i, command=c, where=f"jobs.txt:{i + 1}") for i, c in enumerate(edit)]
            added = [store.ingest(jobs[i:i + 500], resume=True)[0]
                     for i in range(0, len(jobs), 500)]
            assert store.end_reading() == 0
        assert sum(added) == 1
        rows = {r.id: r for r in store.all_rows()}
        assert len(rows) == 1401 and rows[1400].command == "echo new"
        assert [(rows[n].command, rows[n].source_pos) for n in (0, 700, 1400)] == [
            ("echo 0", 1), ("echo 0", 701), ("echo new", 0)]
        assert store.runnable_count() == 1401
    finally:
        store.close()


def test_a_jobs_digest_is_the_same_whichever_way_its_text_is_made():
    """The digests the store holds were made from ``json.dumps`` of the definition; the
    direct text of a plain job (no env, no cwd, whole GPUs) gives the same bytes, so
    no stored job changes identity."""
    commands = ["echo a", "", 'say "hi" \\ there', "tab\tnew\nline\x00\x1f\x7f",
                "caf\u00e9 \u4e2d \U0001f600", "lone \ud800 surrogate", "/" * 300]
    for command in commands:
        for gpus in (0, 1, 2, 1.0, True, 8):
            count = float(gpus)
            expected = json.dumps({"command": command, "env": [], "cwd": None,
                                   "gpus": int(count)}, sort_keys=True, ensure_ascii=True,
                                  separators=(",", ":"))
            assert canonical_text(command, (), None, gpus) == expected, (command, gpus)
    assert definition_digest("echo a", (), None, 1) == "2211a790d02f1dc680e1d8f7"
    assert definition_digest("python train.py --lr 0.1 # \u00e9", (), None, 2) == \
        "5d58f5eccde9b9a53ea3f4ce"
    assert definition_digest("x", [("A", "1")], "/tmp", 0.5) == "0dd52712606a52000c370c1b"
