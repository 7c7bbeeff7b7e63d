"""SIGUSR1 and SIGUSR2 (Slurm's warning before a time limit, ``--signal=USR1@60``) are
forwarded to every running job's process group and said in one line; the sweep goes
on and ends as it would have (exit 0, its summary). hog's own helper processes
(producer, consumers) take no harm when the signal reaches them too."""
import os
import signal

import pytest

from .harness import job_dirs, job_file, lines_of, marker, start_hog, wait_for
from .terminal import Terminal
from .test_ray_backend import ray_hog  # noqa: F401 - a fixture

pytestmark = pytest.mark.timeout(60)

TRAPPING = ("trap 'echo $HOG_JOB_INDEX-USR1 >> ledger' USR1; "
            "trap 'echo $HOG_JOB_INDEX-USR2 >> ledger' USR2; touch ready_$HOG_JOB_INDEX; "
            "while [ ! -e release ]; do sleep 0.05; done")


def ledger(tmp_path):
    path = tmp_path / "ledger"
    return sorted(lines_of(path)) if path.exists() else []


def ready(tmp_path, *indexes):
    wait_for(lambda: all((tmp_path / f"ready_{i}").exists() for i in indexes), 20,
             what=f"jobs {indexes} to set their traps")


@pytest.mark.parametrize("group", [False, True], ids=["to-hog", "to-hogs-process-group"])
def test_sigusr1_reaches_every_running_job_is_logged_and_the_sweep_goes_on(tmp_path, group):
    job_file(tmp_path, TRAPPING, TRAPPING, "echo later")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0")
    ready(tmp_path, 0, 1)
    (os.killpg if group else os.kill)(hog.pid, signal.SIGUSR1)
    wait_for(lambda: ledger(tmp_path) == ["0-USR1", "1-USR1"], 10,
             what="both running jobs to get SIGUSR1")
    hog.wait_output("SIGUSR1: forwarded to 2 running job(s)")
    assert hog.alive()
    (tmp_path / "release").touch()
    assert hog.wait() == 0, hog.output
    assert [marker(d) for d in job_dirs(tmp_path)] == ["SUCCESS"] * 3
    assert "3 succeeded" in hog.output
    assert ledger(tmp_path) == ["0-USR1", "1-USR1"]     # once each, even sent to the group


def test_sigusr2_too_and_each_signal_is_forwarded_once_per_arrival(tmp_path):
    job_file(tmp_path, TRAPPING)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    ready(tmp_path, 0)
    hog.signal(signal.SIGUSR2)
    wait_for(lambda: ledger(tmp_path) == ["0-USR2"], 10, what="SIGUSR2 in the job")
    hog.signal(signal.SIGUSR1)
    wait_for(lambda: ledger(tmp_path) == ["0-USR1", "0-USR2"], 10, what="then SIGUSR1")
    hog.wait_output("SIGUSR1: forwarded to 1 running job(s)")
    assert "SIGUSR2: forwarded to 1 running job(s)" in hog.output
    (tmp_path / "release").touch()
    assert hog.wait() == 0, hog.output



@pytest.mark.timeout(300)
def test_on_ray_sigusr1_is_forwarded_to_the_job_on_its_node(ray_hog, tmp_path):  # noqa: F811
    job_file(tmp_path, f"cd {tmp_path}; {TRAPPING}")
    hog = ray_hog.start("--job_file", "jobs.txt")
    wait_for(lambda: (tmp_path / "ready_0").exists(), 120, what="the Ray job to set its traps")
    hog.send_signal(signal.SIGUSR1)
    wait_for(lambda: ledger(tmp_path) == ["0-USR1"], 30, what="SIGUSR1 in the Ray job")
    wait_for(lambda: "SIGUSR1: forwarded to 1 running job(s)" in hog.log.read_text(), 10,
             what="the line saying so")
    (tmp_path / "release").touch()
    assert hog.wait(60) == 0, hog.log.read_text()
    assert marker(job_dirs(tmp_path)[0]) == "SUCCESS"


def test_on_the_dashboard_the_forwarding_is_one_message_and_the_sweep_ends_normally(tmp_path):
    job_file(tmp_path, TRAPPING)
    term = Terminal(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", rows=20, cols=80)
    ready(tmp_path, 0)
    term.wait_for("last output", what="the dashboard")
    os.kill(term.proc.pid, signal.SIGUSR1)
    term.wait_for("hog: SIGUSR1: forwarded to 1 running job(s)", what="the message")
    wait_for(lambda: ledger(tmp_path) == ["0-USR1"], 10, what="SIGUSR1 in the job")
    (tmp_path / "release").touch()
    assert term.wait_exit() == 0
    assert term.text.count("SIGUSR1: forwarded") == 1
