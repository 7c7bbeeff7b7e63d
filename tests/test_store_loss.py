"""The job folders are the sweep's second record: a lost queue never makes a new sweep.

When ``.hog/hog.sqlite`` is deleted, emptied, overwritten with garbage or replaced by a
fresh database while job folders exist, hog refuses to run (one line, exit 2, nothing
run or written) and names ``hog rebuild DIR``, which recreates the queue from every
folder's INFO; the next run then runs only what had not succeeded. Exactly-once is
checked with a ledger outside the output directory.
"""
import shutil

import pytest

from hog.config import RunConfig
from hog.engine.control import TICK_S
from hog.engine.progress import EXIT_FAILED
from hog.engine.runner import Runner
from hog.model import USAGE_FIELDS, Job
from hog.sources import SourceSpec
from hog.state.queuecheck import SAMPLE, folder_numbers, queue_problem
from hog.state.store import Store
from tests.harness import (
    assert_no_traceback,
    counts_of,
    db_path,
    job_dirs,
    job_file,
    marker,
    query,
    status_counts,
)
from tests.test_engine import Clock, RecordingDisplay, step_until


def snapshot(root):
    """Every file under the job folders, with its size and mtime."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for d in job_dirs(root.parent, output=root.name) for p in d.iterdir()}


def a_finished_sweep(hq):
    """A sweep of three jobs (0 and 2 succeed, 1 fails), each appending its number to a
    ledger outside the output directory."""
    out, ledger, fixed = hq.tmp / "out", hq.tmp / "ledger.txt", hq.tmp / "fixed"
    jobs = job_file(hq.tmp, f"echo $HOG_JOB_INDEX >> {ledger}",
                    f"echo $HOG_JOB_INDEX >> {ledger}; test -e {fixed}",
                    f"echo $HOG_JOB_INDEX >> {ledger}")
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 1, r.stdout + r.stderr
    assert counts_of(ledger) == {"0": 1, "1": 1, "2": 1}
    return out, ledger, jobs, fixed


def garbage(db):
    db.write_bytes(b"this is not an SQLite database " * 200)


def replace_with_a_fresh_database(hq, db):
    elsewhere = hq.tmp / "elsewhere"
    Store(str(elsewhere / ".hog")).close()
    db.write_bytes((elsewhere / ".hog" / "hog.sqlite").read_bytes())


def break_store(hq, out, how):
    db = db_path(out)
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    if how == "missing":
        shutil.rmtree(out / ".hog")
    elif how == "empty":
        db.write_bytes(b"")
    elif how == "corrupt":
        garbage(db)
    else:
        replace_with_a_fresh_database(hq, db)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["missing", "empty", "corrupt", "replaced"])
def test_a_lost_queue_is_refused_in_one_line_then_rebuilt_and_only_what_failed_runs_again(
        hq, how):
    out, ledger, jobs, fixed = a_finished_sweep(hq)
    break_store(hq, out, how)
    before = snapshot(out)

    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 2, r.stdout + r.stderr
    assert_no_traceback(r.stderr)
    said = r.stderr.strip().splitlines()
    assert len(said) == 1, r.stderr
    assert f"holds 3 job folder(s) but its queue (.hog/hog.sqlite) is {how}" in said[0]
    assert "nothing was run or overwritten" in said[0] and said[0].endswith(f"hog rebuild {out}")
    assert counts_of(ledger) == {"0": 1, "1": 1, "2": 1}        # nothing ran again
    assert snapshot(out) == before                               # nothing was written

    r = hq.run("rebuild", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 job folder(s)" in r.stdout and "1 failed, 2 succeeded" in r.stdout
    if how in ("empty", "corrupt", "replaced"):                  # kept, not deleted
        assert len(list((out / ".hog").glob("hog.sqlite.broken-*"))) >= 1
    assert status_counts(out) == {"succeeded": 2, "failed": 1}

    fixed.touch()
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert counts_of(ledger) == {"0": 1, "1": 2, "2": 1}         # only the failed one
    assert status_counts(out) == {"succeeded": 3}
    assert [marker(d) for d in job_dirs(hq.tmp, output="out")] == ["SUCCESS"] * 3
    assert (out / "job_1" / "FAILURE.1").exists()                # its first attempt kept


@pytest.mark.timeout(90)
def test_a_queue_rebuilt_after_the_source_was_edited_runs_no_finished_job_again(hq):
    out, ledger, jobs, fixed = a_finished_sweep(hq)
    lines = jobs.read_text()
    jobs.write_text(f"echo new >> {ledger}\n" + lines)    # every old job moves one line down
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    assert counts_of(ledger) == {"0": 1, "1": 2, "2": 1, "new": 1}, r.stdout + r.stderr
    break_store(hq, out, "empty")

    r = hq.run("rebuild", out)      # two folders once stood at source position 0
    assert r.returncode == 0, r.stdout + r.stderr
    fixed.touch()
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert counts_of(ledger) == {"0": 1, "1": 3, "2": 1, "new": 1}   # only the failed one
    assert [marker(d) for d in job_dirs(hq.tmp, output="out")] == ["SUCCESS"] * 4


@pytest.mark.timeout(60)
@pytest.mark.parametrize("verb", [["status"], ["status", "--json"], ["add", "--", "true"],
                                  ["retry", "--failed"], ["kill", "0"], ["stop"],
                                  ["attach", "--plain"], ["logs", "0"], ["report"]])
def test_every_verb_on_a_corrupt_store_says_so_in_one_line_with_exit_2(hq, verb):
    out, ledger, _, _ = a_finished_sweep(hq)
    break_store(hq, out, "corrupt")
    r = hq.run(verb[0], out, *verb[1:], timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    assert_no_traceback(r.stdout + r.stderr)
    said = r.stderr.strip().splitlines()
    assert len(said) == 1 and "corrupt" in said[0] and "hog rebuild" in said[0], r.stderr
    assert counts_of(ledger) == {"0": 1, "1": 1, "2": 1}


@pytest.mark.timeout(60)
def test_a_corrupt_store_without_job_folders_is_one_line_too(hq):
    out = hq.tmp / "out"
    (out / ".hog").mkdir(parents=True, mode=0o700)
    garbage(db_path(out))
    db_path(out).chmod(0o600)
    r = hq.run("status", out)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "corrupt" in r.stderr
    assert_no_traceback(r.stderr)


@pytest.mark.timeout(60)
def test_hog_deleted_while_running_stops_starting_jobs_and_is_not_recreated(hq):
    out, ledger, go = hq.tmp / "out", hq.tmp / "ledger.txt", hq.tmp / "go"
    jobs = job_file(hq.tmp, f"echo $HOG_JOB_INDEX >> {ledger}; "
                            f"while [ ! -e {go} ]; do sleep 0.02; done",
                    *[f"echo $HOG_JOB_INDEX >> {ledger}"] * 2)
    runner = hq.start("--job_file", jobs, "--gpus", "0", "--output_dir", out,
                      "--display", "plain")
    runner.wait_output("start job_0", timeout=20)
    shutil.rmtree(out / ".hog")
    runner.wait_output("was deleted or replaced while this runner ran", timeout=10)
    r = hq.run("rebuild", out)                  # job 0 still runs: not yet
    assert r.returncode == 2 and "job_0 still runs" in r.stderr, r.stderr
    assert not (out / ".hog").exists()
    go.touch()
    assert runner.wait(30) == 1
    assert_no_traceback(runner.output)
    assert f"hog rebuild {out}" in runner.stderr + runner.stdout
    assert counts_of(ledger) == {"0": 1}                         # nothing more started
    assert not (out / ".hog").exists()                           # no fresh store
    assert marker(out / "job_0") == "SUCCESS"                    # the running job recorded

    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 2 and "is missing" in r.stderr, r.stderr
    assert hq.run("rebuild", out).returncode == 0
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert counts_of(ledger) == {"0": 1, "1": 1, "2": 1}         # each exactly once
    assert status_counts(out) == {"succeeded": 3}


@pytest.mark.timeout(60)
def test_the_store_replaced_while_running_stops_the_runner_too(hq):
    out, ledger, go = hq.tmp / "out", hq.tmp / "ledger.txt", hq.tmp / "go"
    jobs = job_file(hq.tmp, f"echo $HOG_JOB_INDEX >> {ledger}; "
                            f"while [ ! -e {go} ]; do sleep 0.02; done",
                    f"echo $HOG_JOB_INDEX >> {ledger}")
    runner = hq.start("--job_file", jobs, "--gpus", "0", "--output_dir", out,
                      "--display", "plain")
    runner.wait_output("start job_0", timeout=20)
    fresh = hq.tmp / "fresh.sqlite"
    replace_with_a_fresh_database(hq, fresh)
    fresh.replace(db_path(out))                # a new file where the old one was
    runner.wait_output("was deleted or replaced", timeout=10)
    go.touch()
    assert runner.wait(30) == 1
    assert counts_of(ledger) == {"0": 1}


@pytest.mark.timeout(60)
def test_rebuild_refuses_while_a_runner_is_active_on_an_intact_queue_and_without_folders(hq):
    out, go = hq.tmp / "out", hq.tmp / "go"
    jobs = job_file(hq.tmp, f"while [ ! -e {go} ]; do sleep 0.02; done")
    runner = hq.start("--job_file", jobs, "--gpus", "0", "--output_dir", out,
                      "--display", "plain")
    runner.wait_output("start job_0", timeout=20)
    r = hq.run("rebuild", out, "--force")
    assert r.returncode == 2 and "a runner is active" in r.stderr, r.stderr
    go.touch()
    assert runner.wait(30) == 0
    r = hq.run("rebuild", out)                  # an intact queue: nothing to rebuild
    assert r.returncode == 2 and "nothing to rebuild" in r.stderr, r.stderr
    assert hq.run("rebuild", out, "--force").returncode == 0
    assert status_counts(out) == {"succeeded": 1}
    empty = hq.tmp / "empty"
    empty.mkdir()
    r = hq.run("rebuild", empty)
    assert r.returncode == 2 and "no job folders" in r.stderr, r.stderr


@pytest.mark.timeout(60)
def test_the_runner_stepped_in_process_stops_on_the_tick_after_its_queue_file_is_deleted(
        tmp_path):
    ledger, go = tmp_path / "ledger.txt", tmp_path / "go"
    jobs = [f"echo $HOG_JOB_INDEX >> {ledger}; while [ ! -e {go} ]; do sleep 0.02; done",
            f"echo $HOG_JOB_INDEX >> {ledger}"]
    clock = Clock()
    config = RunConfig(source=SourceSpec("python", "store-loss", items=jobs), slots=("0",),
                       output_dir=str(tmp_path / "out"), display="quiet", grace=1.0)
    runner = Runner(config, make_display=RecordingDisplay, clock=clock)
    runner.open()
    runner.start()
    try:
        step_until(runner, clock, lambda: runner.st.display.started == ["job_0"])
        shutil.rmtree(tmp_path / "out" / ".hog")
        assert not runner.step(clock(), [])          # no tick yet: nothing noticed
        assert not runner.st.stopping
        runner.step(clock.advance(TICK_S), [])
        assert runner.st.stopping
        said = runner.st.display.messages[-1]
        assert "was deleted or replaced while this runner ran" in said
        assert said.endswith(f"hog rebuild {tmp_path / 'out'}")
        go.touch()
        assert step_until(runner, clock)
    finally:
        runner.shutdown()
    assert runner.report() == EXIT_FAILED
    assert counts_of(ledger) == {"0": 1}
    assert not (tmp_path / "out" / ".hog").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["missing", "empty", "replaced"])
def test_hog_add_and_status_on_a_lost_queue_refuse_and_write_nothing(hq, how):
    out, ledger, _, _ = a_finished_sweep(hq)
    break_store(hq, out, how)
    before = sorted(p.name for p in out.rglob("*"))
    hog_files = {p.name: p.read_bytes() for p in (out / ".hog").glob("*") if p.is_file()} \
        if (out / ".hog").exists() else None
    for verb in (["add", out, "--", f"echo added >> {ledger}"], ["status", out]):
        r = hq.run(*verb)
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"is {how}" in r.stderr and "hog rebuild" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.rglob("*")) == before
    if hog_files is not None:
        assert {p.name: p.read_bytes() for p in (out / ".hog").glob("*")
                if p.is_file()} == hog_files          # (folders: in the listing above)


def usage_and_params(out):
    rows = {r["id"]: tuple(r[k] for k in USAGE_FIELDS) for r in query(
        out, "SELECT * FROM jobs ORDER BY id")}
    keys = query(out, "SELECT value FROM meta WHERE key = 'param_keys'")
    return rows, [k["value"] for k in keys]


@pytest.mark.timeout(90)
def test_a_rebuilt_queue_has_what_each_job_used_and_the_grids_parameters(hq):
    out = hq.tmp / "out"
    sweep = hq.tmp / "sweep.yaml"
    sweep.write_text("jobs:\n  - sweep:\n      cmd: 'head -c 2000000 /dev/zero | wc -c # {lr}'\n"
                     "      grid: {lr: [0.1, 0.01], seed: [1, 2]}\n")
    r = hq.run("--job_file", sweep, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 0, r.stdout + r.stderr
    before = usage_and_params(out)
    assert len(before[0]) == 4 and all(u[2] for u in before[0].values())   # max RSS known
    assert before[1] == ['["lr", "seed"]']
    shutil.rmtree(out / ".hog")
    for name in ("results.csv", "results.jsonl"):
        (out / name).unlink()

    r = hq.run("rebuild", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert usage_and_params(out) == before
    r = hq.run("--job_file", sweep, "--gpus", "0", "--output_dir", out)   # nothing to run
    assert r.returncode == 0 and "already succeeded" in r.stdout, r.stdout + r.stderr
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert "param.lr" in header and "param.seed" in header and "max_rss_bytes" in header


def test_a_verbs_check_looks_up_a_sample_of_the_folders_and_a_sweeps_every_one(tmp_path):
    """``hog status``, ``add``, ``stop``, ``kill`` look up the first ``SAMPLE`` folders the
    directory lists, so they cost the same on a sweep of a million folders; a sweep
    looks up every folder before it runs anything."""
    out = tmp_path / "out"
    store = Store(str(out / ".hog"))
    store.add([Job(index=i, command="true") for i in range(300)])
    for i in range(300):
        (out / f"job_{i}").mkdir()
        (out / f"job_{i}" / "INFO").write_text("")
    for name in ("data1", "ckpt2"):             # folders named like job folders, not hog's
        (out / name).mkdir()
    listed = [n for n, name in folder_numbers(str(out)) if name.startswith("job_")]
    assert len(listed) == 300                                   # the directory's own order
    assert queue_problem(str(out)) is None and queue_problem(str(out), SAMPLE) is None
    store.db.execute("DELETE FROM jobs WHERE id = ?", (listed[-1],))   # a folder it lost
    assert queue_problem(str(out)) == ("replaced", 300)
    assert queue_problem(str(out), SAMPLE) is None              # not among those looked up
    store.db.execute("DELETE FROM jobs WHERE id = ?", (listed[0],))
    assert queue_problem(str(out), SAMPLE) == ("replaced", 300)
    store.close()
