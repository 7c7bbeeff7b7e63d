"""No check that protects existing files runs after anything that writes them.

``--detach``, ``hog add`` and a plain run refuse a folder of job folders that has no
queue before they create anything; ``--fresh`` moves nothing aside when the new
source proves invalid; ``--detach`` returns only once the runner has started its
first job or failed, and shows that failure with its exit code. An empty command,
an empty ``--output_dir`` and ``--cpu_slots`` beyond 1024 are usage errors.
"""
import os
import re
import time

import pytest

from tests.harness import (
    assert_no_traceback,
    counts_of,
    job_file,
    pid_alive,
    query,
    status_counts,
    wait_for,
    write,
)


def foreign_folder(hq):
    """``it/job_0/job_0.OUT`` from elsewhere (no queue, no INFO), dated in 2020."""
    out = hq.tmp / "it"
    precious = write(out / "job_0" / "job_0.OUT", "results from elsewhere\n")
    os.utime(precious, (1577836800, 1577836800))
    return out, precious


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["run", "detach", "add"])
def test_a_folder_of_foreign_job_folders_is_refused_before_anything_is_written(hq, how):
    out, precious = foreign_folder(hq)
    ledger = hq.tmp / "ledger.txt"
    jobs = job_file(hq.tmp, f"echo ran >> {ledger}")
    if how == "add":
        r = hq.run("add", out, "--", f"echo ran >> {ledger}")
    else:
        r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out,
                   *(["--detach"] if how == "detach" else []))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "holds job folders (job_0, ...) but no hog queue" in r.stderr
    assert_no_traceback(r.stderr)
    assert precious.read_text() == "results from elsewhere\n"
    assert precious.stat().st_mtime == 1577836800
    assert sorted(p.name for p in out.iterdir()) == ["job_0"]   # no .hog/, nothing else
    assert sorted(p.name for p in (out / "job_0").iterdir()) == ["job_0.OUT"]
    time.sleep(0.3)
    assert not ledger.exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", [b"\xff\xfe not utf-8\n", b"echo x # hog: timeout=soon\n",
                                 b"# only a comment\n"])
def test_fresh_moves_nothing_when_the_new_job_file_proves_invalid(hq, bad):
    out, ledger = hq.tmp / "out", hq.tmp / "ledger.txt"
    good = job_file(hq.tmp, f"echo $HOG_JOB_INDEX >> {ledger}", name="good.txt")
    assert hq.run("--job_file", good, "--gpus", "0", "--output_dir", out).returncode == 0
    broken = hq.tmp / "broken.txt"
    broken.write_bytes(bad)
    for detach in ([], ["--detach"]):
        r = hq.run("--job_file", broken, "--gpus", "0", "--output_dir", out, "--fresh",
                   *detach)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "broken.txt" in r.stderr and "nothing was moved" in r.stderr, r.stderr
        assert_no_traceback(r.stderr)
        assert not [p for p in hq.tmp.iterdir() if p.name.startswith("out.old-")]
        assert status_counts(out) == {"succeeded": 1}
    assert counts_of(ledger) == {"0": 1}


@pytest.mark.timeout(60)
def test_fresh_with_detach_moves_the_old_sweep_aside_in_the_parent_and_the_log_follows(hq):
    out, ledger, go = hq.tmp / "out", hq.tmp / "ledger.txt", hq.tmp / "go"
    jobs = job_file(hq.tmp, f"echo $HOG_JOB_INDEX >> {ledger}; "
                            f"while [ ! -e {go} ]; do sleep 0.02; done")
    go.touch()
    assert hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out).returncode == 0
    go.unlink()
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out, "--fresh", "--detach")
    assert r.returncode == 0, r.stdout + r.stderr
    aside = [p for p in hq.tmp.iterdir() if p.name.startswith("out.old-")]
    assert len(aside) == 1 and aside[0].name in r.stdout
    pid = int(re.search(r"pid (\d+)", r.stdout).group(1))
    go.touch()
    wait_for(lambda: not pid_alive(pid), timeout=20, what="the detached runner to end")
    assert counts_of(ledger) == {"0": 2}
    assert status_counts(out) == {"succeeded": 1}
    assert "1 job(s) finished" in (out / ".hog" / "runner.log").read_text()
    assert not (aside[0] / ".hog" / "runner.log").exists()


@pytest.mark.timeout(60)
def test_detach_shows_an_error_that_comes_after_two_seconds_and_exits_with_its_code(hq):
    yielder = write(hq.tmp / "slow.py", "import time\ntime.sleep(2)\n"
                    "raise RuntimeError('the framework failed to load')\n"
                    "def yielder():\n    yield 'true'\n")
    t0 = time.monotonic()
    r = hq.run("--job_yielder", yielder, "--gpus", "0", "--output_dir", hq.tmp / "out",
               "--detach")
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stdout + r.stderr
    assert took >= 2
    assert "the framework failed to load" in r.stderr and "slow.py" in r.stderr
    assert "running in the background" not in r.stdout + r.stderr
    assert_no_traceback(r.stderr)


@pytest.mark.timeout(60)
def test_detach_returns_once_the_first_job_has_started(hq):
    out, ledger, go = hq.tmp / "out", hq.tmp / "ledger.txt", hq.tmp / "go"
    jobs = job_file(hq.tmp, f"sleep 0.5; echo $HOG_JOB_INDEX >> {ledger}; "
                            f"while [ ! -e {go} ]; do sleep 0.02; done")
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out, "--detach")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "its first job started" in r.stdout
    assert [row["status"] for row in query(out, "SELECT status FROM jobs")] == ["running"]
    assert not list((out / ".hog").glob("detach-*"))           # the status file is gone
    pid = int(re.search(r"pid (\d+)", r.stdout).group(1))
    go.touch()
    wait_for(lambda: not pid_alive(pid), timeout=20, what="the detached runner to end")
    assert counts_of(ledger) == {"0": 1}
    assert status_counts(out) == {"succeeded": 1}


@pytest.mark.timeout(60)
def test_detach_with_nothing_left_to_do_shows_the_runners_word_and_exits_0(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, "true")
    assert hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out).returncode == 0
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out, "--detach")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing left to do" in r.stdout + r.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args,said", [
    (["add", "{out}", "--"], "give a command"),
    (["add", "{out}", "--", ""], "is empty"),
    (["add", "{out}", "--", "   "], "is empty"),
    (["--job_file", "{jobs}", "--gpus", "0", "--output_dir", ""], "--output_dir"),
    (["--job_file", "{jobs}", "--gpus", "0", "--output_dir", "{out}", "--cpu_slots", "1025"],
     "--cpu_slots 1025"),
])
def test_empty_commands_and_output_dirs_and_too_many_cpu_slots_are_usage_errors(hq, args, said):
    out, jobs = hq.tmp / "out", job_file(hq.tmp, "true")
    r = hq.run(*[a.format(out=out, jobs=jobs) for a in args])
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


@pytest.mark.timeout(60)
def test_detach_with_keep_alive_and_an_empty_queue_returns_once_the_runner_waits(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, "true")
    assert hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out).returncode == 0
    t0 = time.monotonic()
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out, "--keep_alive",
               "--detach")
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - t0 < 20
    assert "waits for hog add" in r.stdout
    assert hq.run("stop", out).returncode == 0
    pid = int(re.search(r"pid (\d+)", r.stdout).group(1))
    wait_for(lambda: not pid_alive(pid), timeout=20, what="the detached runner to stop")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["detach", "detach-fresh", "fresh", "add", "add-existing"])
def test_an_output_directory_in_an_unsafe_parent_is_refused_before_anything_is_made(hq, how):
    """A parent anyone can write to (0777, not sticky): the location check comes first,
    so nothing is made, moved or queued there; one line, exit 2."""
    parent = hq.tmp / "shared"
    parent.mkdir()
    os.chmod(parent, 0o777)
    out = parent / "out"
    if how in ("detach-fresh", "fresh", "add-existing"):
        write(out / "notes.txt", "mine\n")
    before = sorted(str(p.relative_to(parent)) for p in parent.rglob("*"))
    ledger = hq.tmp / "ledger.txt"
    jobs = job_file(hq.tmp, f"echo ran >> {ledger}")
    if how.startswith("add"):
        r = hq.run("add", out, "--", f"echo ran >> {ledger}")
    else:
        extra = {"detach": ["--detach"], "detach-fresh": ["--detach", "--fresh"],
                 "fresh": ["--fresh"]}[how]
        r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out, *extra)
    assert r.returncode == 2, r.stdout + r.stderr
    assert_no_traceback(r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "writable by others and not sticky" in lines[0], r.stderr
    assert r.stdout == ""
    assert sorted(str(p.relative_to(parent)) for p in parent.rglob("*")) == before
    assert not ledger.exists()
