"""Several runners, one queue: runners started on the same directory share it;
each job runs exactly once, and the jobs of a runner that died are recovered by a
runner still active there (or else by the next one started there)."""
import signal
from collections import Counter

import pytest

from tests.harness import (
    counts_of,
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


@pytest.mark.timeout(120)
def test_three_runners_started_together_run_each_of_600_jobs_exactly_once(hq):
    out, ran = hq.tmp / "out", hq.tmp / "ran.txt"
    n = 600
    jobs = job_file(hq.tmp, *[
        f"echo $HOG_JOB_INDEX $CUDA_VISIBLE_DEVICES >> {ran}; sleep 0.0$((RANDOM % 3))"] * n)
    specs = ["0,1", "2,3", "4,4"]
    runners = [hq.start("--job_file", jobs, "--gpus", spec, "--output_dir", out, "-q")
               for spec in specs]
    codes = [r.wait(100) for r in runners]
    assert codes == [0, 0, 0], [r.output for r in runners]

    lines = [line.split() for line in ran.read_text().splitlines()]
    ran_count = Counter(int(line[0]) for line in lines)
    missing = sorted(set(range(n)) - set(ran_count))
    twice = sorted(i for i, c in ran_count.items() if c > 1)
    assert not missing and not twice, f"missing {missing[:20]}, more than once {twice[:20]}"
    assert status_counts(out) == {"succeeded": n}
    # each runner ran some, each on its own GPUs
    by_runner = {r["id"]: r for r in runner_rows(out)}
    assert sorted(r["pid"] for r in by_runner.values()) == sorted(r.pid for r in runners)
    ran_by = Counter(row["runner"] for row in job_rows(out).values())
    assert len(ran_by) == 3 and all(ran_by[rid] > 0 for rid in by_runner), ran_by
    gpus_of = {r["id"]: set(r["gpus"].split(",")) for r in by_runner.values()}
    for row in job_rows(out).values():
        assert row["gpus"] in gpus_of[row["runner"]], dict(row)
    assert all(len(markers(job_dir(hq.tmp, i, output="out"))) == 1 for i in range(0, n, 37))


@pytest.mark.timeout(90)
def test_the_jobs_of_a_runner_killed_while_another_is_active_are_recovered_by_that_one(hq):
    out = hq.tmp / "out"
    started, finished = hq.tmp / "started.txt", hq.tmp / "finished.txt"
    n = 8
    jobs = job_file(hq.tmp, *[
        f"echo $HOG_JOB_INDEX >> {started}; sleep 2 && echo $HOG_JOB_INDEX >> {finished}"] * n)
    a = hq.start("--job_file", jobs, "--gpus", "0,1", "--output_dir", out)
    wait_for(lambda: len(running_rows(out)) == 2, timeout=20, what="runner A running 2 jobs")
    b = hq.start("--job_file", jobs, "--gpus", "2", "--output_dir", out)
    wait_for(lambda: len({r["runner"] for r in running_rows(out)}) == 2, timeout=20,
             what="runner B running a job too")
    a_id = next(r["id"] for r in runner_rows(out) if r["pid"] == a.pid)
    # (running with its pid stored: the store has a job's pid from the runner's next write)
    a_jobs = [r for r in running_rows(out) if r["runner"] == a_id]
    assert a_jobs, "runner A had jobs running when it was killed"
    a.signal(signal.SIGKILL)
    a.wait(10)
    wait_for(lambda: not any(pid_alive(r["pid"]) for r in a_jobs), timeout=5,
             what="runner A's jobs to end with it")
    assert b.alive()
    # those cut short (one that ended by itself as A was killed is recorded from its
    # folder, not run again)
    a_jobs = [r for r in a_jobs if str(r["id"]) not in counts_of(finished)]
    assert a_jobs, "none of runner A's jobs was cut short"

    c = hq.start("--job_file", jobs, "--gpus", "3", "--output_dir", out)
    assert c.wait(60) == 0, c.output
    assert b.wait(60) == 0, b.output
    assert "recovered" in b.output + c.output     # B (issue 10) or C, whichever is first
    assert status_counts(out) == {"succeeded": n}
    assert counts_of(finished) == {str(i): 1 for i in range(n)}
    for row in a_jobs:                       # ran again, by runner B or C
        i = row["id"]
        assert counts_of(started)[str(i)] == 2
        assert info(job_dir(hq.tmp, i, output="out"))["attempt"] == 2
        assert job_rows(out)[i]["runner"] != a_id
    for i in range(n):
        assert markers(job_dir(hq.tmp, i, output="out")) == ["SUCCESS"]
