"""``results.jsonl`` / ``results.csv`` are kept current by each write re-encoding only
what changed since the last one (the results mark's checkpoints), and always hold what
a full rebuild from the store gives, byte for byte."""
import csv
import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest

import hog
from hog.model import Job
from hog.state import resultfiles, results
from hog.state.jobdir import RESULTS_MARK, Layout
from hog.state.reading import open_sweep
from hog.state.store import Store

from .harness import job_file, run_hog, start_hog, wait_for


def full_rebuild(out: Path, tmp: Path):
    """(jsonl, csv) as a whole write from the store gives them, written elsewhere."""
    where = tmp / f"rebuild{len(list(tmp.glob('rebuild*')))}"
    where.mkdir()
    store = open_sweep(str(out))
    try:
        resultfiles.write_results(store, Layout(str(where), "job_"), whole=True)
    finally:
        store.close()
    return (where / "results.jsonl").read_bytes(), (where / "results.csv").read_bytes()


def files(out: Path):
    return (out / "results.jsonl").read_bytes(), (out / "results.csv").read_bytes()


def assert_current(out: Path, tmp: Path) -> None:
    assert files(out) == full_rebuild(out, tmp)


@pytest.mark.timeout(120)
def test_after_runs_retries_adds_cancels_and_a_resumed_run_the_files_equal_a_full_rebuild(
        tmp_path):
    out = tmp_path / "output"
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    jobs = job_file(tmp_path, *[f"echo {i}" for i in range(12)],
                    "exit 3                                  # hog: name=bad",
                    "[ \"$HOG_ATTEMPT\" -ge 2 ]                # hog: name=flaky retries=1",
                    "echo last")
    args = ("--job_file", jobs, "--gpus", "0,1", "--display", "quiet")
    assert run_hog(tmp_path, *args).returncode == 1
    assert (out / ".hog" / RESULTS_MARK).exists()
    assert_current(out, rebuilt)
    # the sweep run again: its failed job runs again
    run_hog(tmp_path, *args)
    assert_current(out, rebuilt)
    # added jobs, one of them cancelled before any runner starts it
    for cmd in ("echo added1", "echo added2"):
        assert run_hog(tmp_path, "add", out, "--", cmd).returncode == 0
    assert run_hog(tmp_path, "kill", out, "16").returncode == 0
    run_hog(tmp_path, *args)
    assert_current(out, rebuilt)
    # a retry changes a record in the middle of the file
    assert run_hog(tmp_path, "retry", out, "bad").returncode == 0
    run_hog(tmp_path, *args)
    assert_current(out, rebuilt)
    # a run stopped by Ctrl-C (twice: its running job is ended), then resumed
    assert run_hog(tmp_path, "add", out, "--",
                   "sleep $(( HOG_ATTEMPT == 1 ? 30 : 0 ))").returncode == 0
    assert run_hog(tmp_path, "add", out, "--", "echo after").returncode == 0
    hog = start_hog(tmp_path, *args[:3], "0", "--display", "quiet")
    wait_for(lambda: (out / "job_17" / "INFO").exists(), timeout=20)
    hog.signal(signal.SIGINT)
    hog.wait_output("Ctrl-C again")
    hog.signal(signal.SIGINT)
    hog.wait(30)
    assert_current(out, rebuilt)
    run_hog(tmp_path, *args)
    assert_current(out, rebuilt)
    status = [line.split(b",")[4] for line in files(out)[1].splitlines()[1:]]
    assert status[12:] == [b"failed", b"succeeded", b"succeeded", b"succeeded",
                           b"cancelled", b"interrupted", b"succeeded"]


def sweep(tmp_path: Path, n: int):
    """A store of ``n`` jobs (a YAML grid's: with params), as a runner's ingest makes it."""
    store = Store(str(tmp_path / ".hog"))
    store.begin_reading()
    store.ingest([Job(index=i, command=f"echo {i}", where=f"jobs.yaml:{i}",
                      params=(("lr", i / 10), ("seed", i % 3))) for i in range(n)],
                 resume=True)
    store.end_reading()
    store.close()
    return sqlite3.connect(tmp_path / ".hog" / "hog.sqlite")


def finish(db: sqlite3.Connection, ids, status: str = "succeeded") -> None:
    for i in ids:
        db.execute("UPDATE jobs SET status = ?, attempt = attempt + 1, started = ?, "
                   "ended = ?, exit_code = 0, slot = 0, gpus = '0' WHERE id = ?",
                   (status, 1.7e9 + i, 1.7e9 + i + 0.25, i))
    db.commit()


@pytest.fixture()
def counted(monkeypatch):
    """Checkpoints every 3 jobs; returns the list of jobs each write encoded."""
    monkeypatch.setattr(resultfiles, "CHECK_EVERY", 3)
    encoded = []
    real = results.record

    def record(row, layout, params=()):
        encoded.append(row[0])
        return real(row, layout, params)

    monkeypatch.setattr(resultfiles, "record", record)
    return encoded


def write(tmp_path: Path, encoded: list):
    encoded.clear()
    store = open_sweep(str(tmp_path))
    try:
        resultfiles.write_results(store, Layout(str(tmp_path), "job_"))
    finally:
        store.close()
    return list(encoded)


def test_a_write_re_encodes_only_the_jobs_after_the_last_unchanged_checkpoint(
        tmp_path, counted):
    db = sweep(tmp_path, 10)
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    assert write(tmp_path, counted) == list(range(10))
    finish(db, range(7))
    assert write(tmp_path, counted) == list(range(10))    # nothing settled before
    assert_current(tmp_path, rebuilt)
    finish(db, range(7, 10))
    assert write(tmp_path, counted) == [7, 8, 9]      # checkpoints at 3, 6 and 7
    assert_current(tmp_path, rebuilt)
    assert write(tmp_path, counted) == []                 # nothing changed
    assert_current(tmp_path, rebuilt)
    db.execute("UPDATE jobs SET status = 'queued' WHERE id = 4")     # a retry
    db.commit()
    assert write(tmp_path, counted) == [3, 4, 5, 6, 7, 8, 9]
    assert_current(tmp_path, rebuilt)
    finish(db, [4], "failed")                             # checkpoint at 4 now
    assert write(tmp_path, counted) == [4, 5, 6, 7, 8, 9]
    assert_current(tmp_path, rebuilt)
    db.close()


def test_files_changed_by_hand_are_written_whole_again(tmp_path, counted):
    db = sweep(tmp_path, 5)
    finish(db, range(5))
    db.close()
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    write(tmp_path, counted)
    with open(tmp_path / "results.csv", "ab") as f:
        f.write(b"edited\n")
    assert write(tmp_path, counted) == list(range(5))
    assert_current(tmp_path, rebuilt)
    (tmp_path / "results.jsonl").unlink()
    assert write(tmp_path, counted) == list(range(5))
    assert_current(tmp_path, rebuilt)
    os.unlink(tmp_path / ".hog" / RESULTS_MARK)
    assert write(tmp_path, counted) == list(range(5))
    assert_current(tmp_path, rebuilt)


def test_grid_parameters_are_columns_after_the_fields_sorted_by_key(tmp_path):
    db = sweep(tmp_path, 3)
    db.execute("INSERT INTO jobs (id, name, command, added) VALUES (3, NULL, 'echo a', 0)")
    db.commit()
    db.close()
    store = open_sweep(str(tmp_path))
    try:
        recs = list(results.records(store, Layout(str(tmp_path), "job_")))
    finally:
        store.close()
    assert list(recs[0]) == list(results.FIELDS) + ["param.lr", "param.seed"]
    assert [(r["param.lr"], r["param.seed"]) for r in recs] == [
        (0.0, 0), (0.1, 1), (0.2, 2), (None, None)]


def test_a_runners_spool_encodes_jobs_as_they_finish_in_order_and_its_end_only_the_rest(
        tmp_path, counted):
    db = sweep(tmp_path, 10)
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    store = open_sweep(str(tmp_path))
    layout = Layout(str(tmp_path), "job_")
    try:
        spool = resultfiles.ResultsSpool(layout)
        spool.advance(store)
        assert counted == []
        finish(db, range(4))
        spool.advance(store)
        assert counted == [0, 1, 2, 3]
        finish(db, [5])                     # not in order yet: waits for job 4
        spool.advance(store)
        assert counted == [0, 1, 2, 3]
        finish(db, [4])
        spool.advance(store)
        assert counted == [0, 1, 2, 3, 4, 5]
        counted.clear()
        resultfiles.save_results(store, layout, spool)
        assert counted == [6, 7, 8, 9]
        assert_current(tmp_path, rebuilt)
        assert not list((tmp_path / ".hog").glob("results.spool.*"))
        # the next run's spool starts from those files; a retry of job 4 meanwhile
        spool = resultfiles.ResultsSpool(layout)
        spool.advance(store)
        finish(db, [4])
        counted.clear()
        resultfiles.save_results(store, layout, spool)
        assert counted == [3, 4, 5, 6, 7, 8, 9]
        assert_current(tmp_path, rebuilt)
    finally:
        store.close()
        db.close()


@pytest.mark.timeout(60)
def test_a_yaml_grids_parameters_are_columns_of_the_files_and_fields_of_hog_results(tmp_path):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(
        "jobs:\n"
        "  - {cmd: echo prep, name: prep}\n"
        "  - sweep:\n"
        "      cmd: echo {lr} {opt}\n"
        "      name: train\n"
        "      grid: {opt: [adam, sgd], lr: [0.1, 1]}\n")
    r = run_hog(tmp_path, "--job_file", sweep_file, "--gpus", "0", "--display", "quiet")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "output"
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert list(recs[0])[-3:] == ["gpu_util_mean", "param.lr", "param.opt"]
    assert [(x["name"], x["param.lr"], x["param.opt"]) for x in recs] == [
        ("prep", None, None), ("train-opt=adam-lr=0.1", 0.1, "adam"),
        ("train-opt=adam-lr=1", 1, "adam"), ("train-opt=sgd-lr=0.1", 0.1, "sgd"),
        ("train-opt=sgd-lr=1", 1, "sgd")]
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(x["param.lr"], x["param.opt"]) for x in rows] == [
        ("", ""), ("0.1", "adam"), ("1", "adam"), ("0.1", "sgd"), ("1", "sgd")]
    res = hog.results(out)
    assert res.job("train-opt=sgd-lr=0.1").params == {"opt": "sgd", "lr": 0.1}
    assert res.job("prep").params == {}
    flat = res.to_records()
    assert [(x["param.lr"], x["param.opt"]) for x in flat] == [
        (None, None), (0.1, "adam"), (1, "adam"), (0.1, "sgd"), (1, "sgd")]
    assert "params" not in flat[0]
