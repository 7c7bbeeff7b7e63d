"""Resume: running the same command again on the same output directory.

Succeeded jobs are skipped and their folders left alone; failed, interrupted
and never-started ones run; a named job whose command changed runs again and keeps
its earlier files under attempt-numbered names (tests/test_identity.py: the rest of
what an edited source does); ``--fresh`` moves the old
directory aside; another job file on the same directory is refused.
"""
import re
import signal

import pytest

from tests.harness import (
    counts_of,
    info,
    job_dir,
    job_dirs,
    job_file,
    job_rows,
    marker,
    running_rows,
    status_counts,
    wait_for,
)
from tests.harness import out as job_out


def run_sweep(hq, jobs, out, *more, gpus="0"):
    return hq.run("--job_file", jobs, "--gpus", gpus, "--output_dir", out, *more)


def snapshot(folder):
    """Every file of a folder with its size and mtime."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.mark.timeout(60)
def test_the_same_command_again_skips_succeeded_jobs_and_reruns_failed_interrupted_unstarted(hq):
    out, ran, fixed = hq.tmp / "out", hq.tmp / "ran.txt", hq.tmp / "fixed"
    jobs = job_file(hq.tmp, *[
        f"echo $HOG_JOB_INDEX >> {ran}; true",                              # 0 succeeds
        f"echo $HOG_JOB_INDEX >> {ran}; test -e {fixed}",                   # 1 fails at first
        f"echo $HOG_JOB_INDEX >> {ran}; true",                              # 2 succeeds
        f"echo $HOG_JOB_INDEX >> {ran}; test -e {fixed} || sleep 60",       # 3 is interrupted
        f"echo $HOG_JOB_INDEX >> {ran}; true",                              # 4 never starts
    ])
    first = hq.start("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    wait_for(lambda: [r["id"] for r in running_rows(out)] == [3]
             and counts_of(ran).get("3") == 1, timeout=20, what="job 3 running its command")
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 143
    assert {i: r["status"] for i, r in job_rows(out).items()} == {
        0: "succeeded", 1: "failed", 2: "succeeded", 3: "interrupted", 4: "queued"}
    assert not job_dir(hq.tmp, 4, output="out").exists()
    kept = {i: snapshot(job_dir(hq.tmp, i, output="out")) for i in (0, 2)}

    fixed.touch()
    r = run_sweep(hq, jobs, out)
    assert r.returncode == 0, r.stdout + r.stderr
    said = r.stdout + r.stderr
    # (the exact count is checked in the next test, where it can be made deterministic)
    assert re.search(r"skipped \d+ job\(s\) that already succeeded", said), said
    # the succeeded jobs ran once and their folders were not touched
    assert counts_of(ran) == {"0": 1, "1": 2, "2": 1, "3": 2, "4": 1}
    assert {i: snapshot(job_dir(hq.tmp, i, output="out")) for i in (0, 2)} == kept
    assert all(marker(job_dir(hq.tmp, i, output="out")) == "SUCCESS" for i in range(5))
    assert [info(job_dir(hq.tmp, i, output="out"))["attempt"] for i in range(5)] == [1, 2, 1, 2, 1]
    assert status_counts(out) == {"succeeded": 5}

    again = run_sweep(hq, jobs, out)      # nothing left: says so, runs nothing
    assert again.returncode == 0
    assert "nothing left to do" in again.stdout + again.stderr
    assert counts_of(ran) == {"0": 1, "1": 2, "2": 1, "3": 2, "4": 1}


@pytest.mark.timeout(60)
def test_the_resume_message_counts_as_skipped_only_jobs_that_had_succeeded_before(hq):
    """A job source that is slow to start (a yielder pausing 1 s) lets the runner
    start queued jobs from the store before the source is re-read: a never-started
    job then runs and succeeds first, and must not be reported as skipped."""
    out, fixed = hq.tmp / "out", hq.tmp / "fixed"
    sweep = hq.tmp / "sweep.py"
    sweep.write_text("import time\n"
                     "def yielder():\n"
                     "    time.sleep(1)\n"
                     "    yield 'true'\n"                                   # 0 succeeds
                     f"    yield 'test -e {fixed} || sleep 60'\n"            # 1 interrupted
                     "    yield 'true'\n")                                  # 2 never starts
    first = hq.start("--job_yielder", sweep, "--gpus", "0", "--output_dir", out)
    wait_for(lambda: [r["id"] for r in running_rows(out)] == [1], timeout=20,
             what="job 1 running")
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 143
    assert status_counts(out) == {"succeeded": 1, "interrupted": 1, "queued": 1}

    fixed.touch()
    r = hq.run("--job_yielder", sweep, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert status_counts(out) == {"succeeded": 3}
    said = r.stdout + r.stderr
    assert "skipped 1 job(s) that already succeeded" in said, said


def test_a_named_job_whose_command_changed_runs_again_keeping_earlier_files_under_attempt_numbers(
        hq):
    # (Before issue 10 this held for unnamed jobs too: a job was its line number. An
    # unnamed job is now its command, so a changed one is a new job in a new folder.)
    out = hq.tmp / "out"
    jobs = hq.tmp / "jobs.txt"
    job_file(jobs.parent, "echo old-zero  # hog: name=zero",
             "echo old-one; exit 1  # hog: name=one", "echo same", name=jobs.name)
    assert run_sweep(hq, jobs, out).returncode == 1
    unchanged = snapshot(job_dir(hq.tmp, 2, output="out"))

    job_file(jobs.parent, "echo new-zero  # hog: name=zero", "echo new-one  # hog: name=one",
             "echo same", name=jobs.name)
    r = run_sweep(hq, jobs, out)
    assert r.returncode == 0, r.stdout + r.stderr
    zero, one = job_dir(hq.tmp, 0, output="out"), job_dir(hq.tmp, 1, output="out")
    # the earlier attempt's files, under names carrying its number
    assert sorted(p.name for p in zero.iterdir()) == [
        "INFO", "INFO.1", "SUCCESS", "SUCCESS.1", "job_0.1.ERR", "job_0.1.OUT", "job_0.ERR",
        "job_0.OUT"]
    assert sorted(p.name for p in one.iterdir()) == [
        "FAILURE.1", "INFO", "INFO.1", "SUCCESS", "job_1.1.ERR", "job_1.1.OUT", "job_1.ERR",
        "job_1.OUT"]
    assert (zero / "job_0.1.OUT").read_text() == "old-zero\n"
    assert job_out(zero) == "new-zero\n"
    assert (one / "job_1.1.OUT").read_text() == "old-one\n" and job_out(one) == "new-one\n"
    old_info = (zero / "INFO.1").read_text()
    assert "echo old-zero" in old_info and "attempt: 1" in old_info
    assert info(zero)["command"] == "echo new-zero  # hog: name=zero"
    assert info(zero)["attempt"] == 2
    # the unchanged succeeded job was left alone
    assert snapshot(job_dir(hq.tmp, 2, output="out")) == unchanged
    rows = job_rows(out)
    assert [rows[i]["command"] for i in range(3)] == [
        "echo new-zero  # hog: name=zero", "echo new-one  # hog: name=one", "echo same"]
    assert status_counts(out) == {"succeeded": 3}


def test_fresh_moves_the_old_directory_aside_and_starts_over(hq):
    out, ran = hq.tmp / "out", hq.tmp / "ran.txt"
    jobs = job_file(hq.tmp, *[f"echo $HOG_JOB_INDEX >> {ran}"] * 3)
    assert run_sweep(hq, jobs, out).returncode == 0
    old_success = (job_dir(hq.tmp, 0, output="out") / "SUCCESS").stat().st_mtime_ns

    r = run_sweep(hq, jobs, out, "--fresh")
    assert r.returncode == 0, r.stdout + r.stderr
    aside = [p for p in hq.tmp.iterdir() if p.name.startswith("out.old-")]
    assert len(aside) == 1, list(hq.tmp.iterdir())
    assert aside[0].name in r.stdout + r.stderr
    # the old sweep is intact where it was moved; the new one ran every job again
    assert [p.name for p in job_dirs(hq.tmp, output=aside[0].name)] == ["job_0", "job_1", "job_2"]
    assert (job_dir(hq.tmp, 0, output=aside[0].name) / "SUCCESS").stat().st_mtime_ns == old_success
    assert (aside[0] / ".hog" / "hog.sqlite").exists()
    assert counts_of(ran) == {"0": 2, "1": 2, "2": 2}
    assert all(info(job_dir(hq.tmp, i, output="out"))["attempt"] == 1 for i in range(3))
    assert status_counts(out) == {"succeeded": 3}


def test_another_job_file_on_the_same_directory_is_refused_with_exit_2_and_advice(hq):
    out, ran = hq.tmp / "out", hq.tmp / "ran.txt"
    first = job_file(hq.tmp, "true", "false", name="first.txt")
    second = job_file(hq.tmp, f"echo second >> {ran}", name="second.txt")
    assert run_sweep(hq, first, out).returncode == 1
    before = {i: dict(r) for i, r in job_rows(out).items()}

    r = run_sweep(hq, second, out)
    assert r.returncode == 2, r.stdout + r.stderr
    said = r.stderr
    assert str(first) in said                       # what it found
    assert "1 succeeded" in said and "1 failed" in said
    assert "--output_dir" in said and "--fresh" in said and "hog add" in said   # what to do
    assert not ran.exists()
    assert {i: dict(r) for i, r in job_rows(out).items()} == before
    assert [p.name for p in job_dirs(hq.tmp, output="out")] == ["job_0", "job_1"]
