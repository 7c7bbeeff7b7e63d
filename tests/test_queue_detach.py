"""Logging out does not stop a sweep.

``--detach`` returns at once and leaves the runner in a session of its own,
logging to DIR/.hog/runner.log; without it, a hang-up (SIGHUP to hog's process
group) does not stop the sweep either, and hog's later output goes to that log.
"""
import os
import re
import shlex
import signal
import time

import pytest

from tests.harness import (
    counts_of,
    job_dirs,
    job_file,
    marker,
    pid_alive,
    runner_rows,
    running_rows,
    session_of,
    status_counts,
    wait_for,
)

HOLD = "while [ ! -e {go} ]; do sleep 0.02; done"


@pytest.mark.timeout(60)
def test_detach_returns_at_once_with_the_runner_pid_in_its_own_session_surviving_a_hangup(hq):
    out, go, ran = hq.tmp / "out", hq.tmp / "go", hq.tmp / "ran.txt"
    jobs = job_file(hq.tmp, *[HOLD.format(go=go)]
                    + [f"echo $HOG_JOB_INDEX >> {ran}"] * 3)
    said, rc_file = hq.tmp / "detach.out", hq.tmp / "detach.rc"
    hog = " ".join(shlex.quote(a) for a in hq.argv(
        "--job_file", jobs, "--gpus", "0", "--output_dir", out, "--detach"))
    # a stand-in for the login shell: a session and process group of its own
    t0 = time.monotonic()
    shell = hq.popen(["bash", "-c", f"{hog} > {said} 2>&1; echo $? > {rc_file}; exec sleep 60"],
                     start_new_session=True)
    wait_for(lambda: rc_file.exists() and rc_file.read_text().strip(), timeout=15,
             what="hog --detach to return")
    assert time.monotonic() - t0 < 5, "--detach returns at once"
    assert rc_file.read_text().strip() == "0", said.read_text()
    found = re.search(r"pid (\d+)", said.read_text())
    assert found, said.read_text()
    pid = int(found.group(1))
    assert pid_alive(pid)
    assert session_of(pid) == pid                        # it leads a new session ...
    assert session_of(pid) not in (os.getsid(0), shell.pid)   # ... not the test's or shell's
    wait_for(lambda: [r["pid"] for r in runner_rows(out)] == [pid], what="the runner's row")

    os.killpg(shell.pid, signal.SIGHUP)                  # the connection drops
    assert shell.wait(10) == -signal.SIGHUP
    wait_for(lambda: running_rows(out), timeout=10, what="job 0 running")
    time.sleep(0.5)
    assert pid_alive(pid), "the detached runner survives the hang-up"

    go.touch()
    wait_for(lambda: not pid_alive(pid), timeout=30, what="the detached runner to finish")
    assert status_counts(out) == {"succeeded": 4}
    assert counts_of(ran) == {"1": 1, "2": 1, "3": 1}
    assert [marker(d) for d in job_dirs(hq.tmp, output="out")] == ["SUCCESS"] * 4
    log = (out / ".hog" / "runner.log").read_text()
    assert re.search(r"\[hog [\d:]+\] done job_3", log) and "4 job(s) finished" in log
    assert runner_rows(out)[0]["ended"] is not None


@pytest.mark.timeout(60)
def test_without_detach_a_hangup_does_not_stop_the_sweep_and_later_output_goes_to_the_log(hq):
    out, go = hq.tmp / "out", hq.tmp / "go"
    jobs = job_file(hq.tmp, HOLD.format(go=go), "true", "true")
    runner = hq.start("--job_file", jobs, "--gpus", "0", "--output_dir", out, new_session=True)
    wait_for(lambda: running_rows(out), timeout=20, what="job 0 running")
    runner.signal_group(signal.SIGHUP)
    log = out / ".hog" / "runner.log"
    wait_for(lambda: log.exists() and "SIGHUP" in log.read_text(), timeout=10,
             what="the hang-up noted in runner.log")
    assert runner.alive()
    go.touch()
    assert runner.wait(30) == 0
    assert status_counts(out) == {"succeeded": 3}
    text = log.read_text()
    assert re.search(r"\[hog [\d:]+\] done job_2", text) and "3 job(s) finished" in text
    assert "done job_2" not in runner.stdout               # it went to the log instead
