"""Crash recovery: hog itself SIGKILLed in the middle of a sweep.

No job outlives it, and the next hog on the directory reports the recovery,
runs the interrupted jobs again and never runs a succeeded job twice.
"""
import signal

import pytest

from tests.harness import (
    counts_of,
    info,
    job_dir,
    job_dirs,
    job_file,
    markers,
    running_rows,
    status_counts,
    wait_for,
)


@pytest.mark.timeout(90)
def test_a_sigkilled_runner_leaves_no_job_and_the_next_run_recovers_without_rerunning_successes(hq):
    out = hq.tmp / "out"
    started, finished = hq.tmp / "started.txt", hq.tmp / "finished.txt"
    n = 12
    jobs = job_file(hq.tmp, *[
        f"echo $HOG_JOB_INDEX >> {started}; sleep 1 && echo $HOG_JOB_INDEX >> {finished}"] * n)
    runner = hq.start("--job_file", jobs, "--gpus", "0,0,1,1", "--output_dir", out)

    def mid_sweep():
        done = [d for d in job_dirs(hq.tmp, output="out") if (d / "SUCCESS").exists()]
        return len(done) >= 4 and len(running_rows(out)) == 4
    wait_for(mid_sweep, timeout=30, what="4 jobs done and 4 running")
    runner.signal(signal.SIGKILL)
    runner.wait(10)                                    # reaped, as a shell would

    hq.wait_no_processes(timeout=5, jobs_only=True)    # no job is left running
    hq.wait_no_processes(timeout=10)                   # nor any process of that hog
    succeeded_before = {int(d.name[4:]) for d in job_dirs(hq.tmp, output="out")
                        if (d / "SUCCESS").exists()}
    assert len(succeeded_before) >= 4
    assert status_counts(out).get("running", 0) >= 1  # what the dead runner left behind
    text = hq.run("status", out).stdout
    assert "its runner is gone" in text

    r = hq.run("--job_file", jobs, "--gpus", "0,0,1,1", "--output_dir", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "recovered" in r.stderr and "left running by a runner that died" in r.stderr
    runs = counts_of(started)
    for i in succeeded_before:                         # no succeeded job ran twice
        assert runs[str(i)] == 1, (i, runs)
    assert counts_of(finished) == {str(i): 1 for i in range(n)}
    rerun = {i for i in range(n) if runs[str(i)] > 1}
    assert rerun, "the interrupted jobs ran again"
    for i in range(n):                                 # exactly one SUCCESS each
        folder = job_dir(hq.tmp, i, output="out")
        assert markers(folder) == ["SUCCESS"], (folder, sorted(p.name for p in folder.iterdir()))
        assert info(folder)["attempt"] == (2 if i in rerun else 1)
    for i in rerun:                                    # the interrupted attempt is kept
        folder = job_dir(hq.tmp, i, output="out")
        assert info(folder)["status"] == "succeeded"
        assert (folder / "FAILURE.1").exists()
        assert "status: \"interrupted\"" in (folder / "INFO.1").read_text()
    assert status_counts(out) == {"succeeded": n}
