"""Signals: Ctrl-C once lets running jobs finish, twice (or SIGTERM) ends their whole
process groups; SIGHUP does not stop a sweep; a SIGKILLed hog leaves no job behind."""
import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import time

import pytest

from .harness import (
    hog_argv,
    hog_env,
    info,
    job_dir,
    job_dirs,
    job_file,
    job_pids,
    marker,
    markers,
    out,
    pid_alive,
    start_hog,
    tagged_pids,
    track,
    wait_for,
    write,
)

pytestmark = pytest.mark.timeout(90)

FORCE_HINT = re.compile(r"again|twice|second|force", re.IGNORECASE)


def gated(pids):
    """A job that records its pid, then waits for the file 'release' and says so."""
    return (f"echo $$ > {pids}/leader_$HOG_JOB_INDEX; "
            f"while [ ! -e release ]; do sleep 0.05; done; echo finished")


def with_grandchildren(pids):
    """A job whose process tree is three deep, every pid written down."""
    return (f"echo $$ > {pids}/leader_$HOG_JOB_INDEX; echo started; "
            f"bash -c 'sleep 300 & echo $! > {pids}/gc1_'$HOG_JOB_INDEX'; "
            f"sleep 300 & echo $! > {pids}/gc2_'$HOG_JOB_INDEX'; wait'")


def read_pids(folder, pattern="*"):
    return [int(p.read_text()) for p in sorted(folder.glob(pattern)) if p.read_text().strip()]


def wait_pid_files(folder, count, pattern="*", timeout=20):
    wait_for(lambda: len([p for p in folder.glob(pattern) if p.read_text().strip()]) >= count,
             timeout, what=f"{count} pid files {pattern}")
    return read_pids(folder, pattern)


def setup(tmp_path, make_job, n_jobs):
    pids = tmp_path / "pids"
    pids.mkdir()
    job_file(tmp_path, *[make_job(pids)] * n_jobs)
    return pids


def assert_all_dead(pids, timeout=5):
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout,
             what=f"processes {pids} to be gone")


def assert_interrupted(folder):
    assert marker(folder) == "FAILURE"
    data = info(folder)
    assert data["status"] == "interrupted"
    assert data["ended"] is not None
    assert isinstance(data["duration_s"], (int, float))
    assert data["exit_code"] != 0


# ------------------------------------------------------------------ Ctrl-C once
def test_first_ctrl_c_starts_no_new_jobs_and_lets_running_jobs_finish(tmp_path):
    pids = setup(tmp_path, gated, 6)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    leaders = wait_pid_files(pids, 2, "leader_*")
    hog.signal(signal.SIGINT)
    wait_for(lambda: FORCE_HINT.search(hog.output), 10, what="a hint on how to force the stop")
    time.sleep(0.5)
    assert hog.alive(), "hog exited before its running jobs finished"
    assert all(pid_alive(p) for p in leaders), "the first Ctrl-C killed a job"
    (tmp_path / "release").touch()
    assert hog.wait(20) == 130
    dirs = job_dirs(tmp_path)
    assert [d.name for d in dirs] == ["job_0", "job_1"], "a job started after Ctrl-C"
    for d in dirs:
        assert marker(d) == "SUCCESS"
        assert out(d) == "finished\n"
        assert info(d)["status"] == "succeeded"


def test_ctrl_c_to_the_process_group_lets_running_jobs_finish(tmp_path):
    """A terminal's Ctrl-C reaches hog's whole process group; jobs must not die from it."""
    pids = setup(tmp_path, gated, 4)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    leaders = wait_pid_files(pids, 2, "leader_*")
    hog.signal_group(signal.SIGINT)
    wait_for(lambda: FORCE_HINT.search(hog.output), 10, what="a hint on how to force the stop")
    time.sleep(0.5)
    assert hog.alive()
    assert all(pid_alive(p) for p in leaders), "Ctrl-C to the group killed a job"
    (tmp_path / "release").touch()
    assert hog.wait(20) == 130
    assert [marker(d) for d in job_dirs(tmp_path)] == ["SUCCESS", "SUCCESS"]


def test_ctrl_c_while_no_job_runs_exits_promptly_with_130(tmp_path):
    write(tmp_path / "sweep.py",
          "import time\n\ndef yielder():\n    yield 'echo only'\n    time.sleep(300)\n"
          "    yield 'echo never'\n")
    hog = start_hog(tmp_path, "--job_yielder", "sweep.py", "--gpus", "0")
    wait_for(lambda: markers(job_dir(tmp_path, 0)), 15, what="job_0 to end")
    hog.signal(signal.SIGINT)
    assert hog.wait(10) == 130
    assert [d.name for d in job_dirs(tmp_path)] == ["job_0"]


# ------------------------------------------------------------------ Ctrl-C twice
def test_second_ctrl_c_kills_every_job_process_group(tmp_path, tag):
    pids = setup(tmp_path, with_grandchildren, 4)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", "--grace", "3")
    everything = wait_pid_files(pids, 6)      # 2 running jobs x (leader + 2 grandchildren)
    hog.signal(signal.SIGINT)
    wait_for(lambda: FORCE_HINT.search(hog.output), 10, what="a hint on how to force the stop")
    assert all(pid_alive(p) for p in everything), "the first Ctrl-C killed a job process"
    t0 = time.monotonic()
    hog.signal(signal.SIGINT)
    assert hog.wait(20) == 130
    assert time.monotonic() - t0 < 3 + 5
    assert_all_dead(everything)
    assert job_pids(tag) == []
    dirs = job_dirs(tmp_path)
    assert [d.name for d in dirs] == ["job_0", "job_1"]
    for d in dirs:
        assert_interrupted(d)
        assert out(d) == "started\n"


def test_second_ctrl_c_to_the_process_group_kills_running_jobs(tmp_path, tag):
    pids = setup(tmp_path, with_grandchildren, 2)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", "--grace", "3")
    everything = wait_pid_files(pids, 6)
    hog.signal_group(signal.SIGINT)
    wait_for(lambda: FORCE_HINT.search(hog.output), 10, what="a hint on how to force the stop")
    hog.signal_group(signal.SIGINT)
    assert hog.wait(20) == 130
    assert_all_dead(everything)
    assert job_pids(tag) == []
    for d in job_dirs(tmp_path):
        assert_interrupted(d)


# ------------------------------------------------------------------ SIGTERM
def test_sigterm_kills_every_job_process_group_and_exits_143(tmp_path, tag):
    pids = setup(tmp_path, with_grandchildren, 5)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,1", "--grace", "3")
    everything = wait_pid_files(pids, 9)      # 3 running jobs x 3 processes
    hog.signal(signal.SIGTERM)
    assert hog.wait(20) == 143
    assert_all_dead(everything)
    assert job_pids(tag) == []
    dirs = job_dirs(tmp_path)
    assert [d.name for d in dirs] == ["job_0", "job_1", "job_2"], "a queued job was started"
    for d in dirs:
        assert_interrupted(d)
        assert out(d) == "started\n"


def test_jobs_ignoring_sigterm_are_killed_after_the_grace_period(tmp_path, tag):
    pids = setup(tmp_path, lambda p: f"trap '' TERM; echo $$ > {p}/leader_$HOG_JOB_INDEX; "
                                     f"sleep 300 & echo $! > {p}/child_$HOG_JOB_INDEX; wait", 1)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--grace", "1")
    everything = wait_pid_files(pids, 2)
    t0 = time.monotonic()
    hog.signal(signal.SIGTERM)
    assert hog.wait(20) == 143
    took = time.monotonic() - t0
    assert 0.9 <= took < 8, took
    assert_all_dead(everything)
    assert job_pids(tag) == []
    assert_interrupted(job_dir(tmp_path, 0))


def test_sigterm_while_waiting_for_a_paused_yielder_exits_promptly_with_143(tmp_path):
    write(tmp_path / "sweep.py",
          "import time\n\ndef yielder():\n    yield 'echo only'\n    time.sleep(300)\n"
          "    yield 'echo never'\n")
    hog = start_hog(tmp_path, "--job_yielder", "sweep.py", "--gpus", "0")
    wait_for(lambda: markers(job_dir(tmp_path, 0)), 15, what="job_0 to end")
    hog.signal(signal.SIGTERM)
    assert hog.wait(10) == 143
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"


# ------------------------------------------------------------------ SIGKILL
def test_no_job_process_survives_a_sigkilled_hog(tmp_path, tag):
    pids = setup(tmp_path, with_grandchildren, 4)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    everything = wait_pid_files(pids, 6)
    assert len(job_pids(tag)) >= 6
    hog.signal(signal.SIGKILL)
    hog.wait(5)
    wait_for(lambda: not job_pids(tag), 8, what="every job process to be gone")
    # a process that is still exiting no longer shows its environment: wait for it too
    assert_all_dead(everything)
    # hog's own helper processes (producer, slot processes) do not linger either
    wait_for(lambda: not tagged_pids(tag), 8, what="hog's helper processes to exit")


def test_a_sigkilled_hog_leaves_its_running_jobs_marked_interrupted(tmp_path):
    pids = setup(tmp_path, with_grandchildren, 2)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    wait_pid_files(pids, 6)
    hog.signal(signal.SIGKILL)
    hog.wait(5)
    for i in (0, 1):
        wait_for(lambda: markers(job_dir(tmp_path, i)), 10, what=f"job_{i} to get a marker")
        assert_interrupted(job_dir(tmp_path, i))


# ------------------------------------------------------------------ SIGHUP
def run_through_hangup(tmp_path, send):
    pids = setup(tmp_path, gated, 4)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    leaders = wait_pid_files(pids, 2, "leader_*")
    wait_for(lambda: "job_1" in hog.stdout, 10, what="hog to report job_1 started")
    send(hog)
    log = tmp_path / "output" / ".hog" / "runner.log"
    wait_for(log.exists, 10, what="runner.log")
    time.sleep(0.3)
    assert hog.alive(), "SIGHUP stopped hog"
    assert all(pid_alive(p) for p in leaders), "SIGHUP killed a job"
    stdout_before = hog.stdout
    (tmp_path / "release").touch()
    assert hog.wait(30) == 0
    dirs = job_dirs(tmp_path)
    assert len(dirs) == 4
    for d in dirs:
        assert marker(d) == "SUCCESS"
        assert out(d) == "finished\n"
    text = log.read_text()
    # jobs 2 and 3 started after the hang-up: what hog says about them goes to the log
    assert "job_3" in text
    assert "job_3" not in stdout_before
    assert "job_3" not in hog.stdout
    return text


def test_sighup_does_not_stop_the_sweep_and_later_output_goes_to_runner_log(tmp_path):
    run_through_hangup(tmp_path, lambda hog: hog.signal(signal.SIGHUP))


def test_sighup_to_the_whole_process_group_does_not_stop_the_sweep(tmp_path):
    run_through_hangup(tmp_path, lambda hog: hog.signal_group(signal.SIGHUP))


def test_ctrl_c_after_a_hangup_still_works(tmp_path):
    pids = setup(tmp_path, gated, 4)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    wait_pid_files(pids, 1, "leader_*")
    hog.signal(signal.SIGHUP)
    log = tmp_path / "output" / ".hog" / "runner.log"
    wait_for(log.exists, 10, what="runner.log")
    hog.signal(signal.SIGTERM)
    assert hog.wait(20) == 143
    assert_interrupted(job_dir(tmp_path, 0))
    assert len(job_dirs(tmp_path)) == 1


def test_losing_the_controlling_terminal_does_not_stop_the_sweep(tmp_path):
    """An SSH disconnect: the terminal goes away (writes to it fail) and the kernel sends
    SIGHUP to hog's process group. The sweep carries on; hog's output goes to the log."""
    pids = setup(tmp_path, gated, 3)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def take_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(hog_argv("--job_file", "jobs.txt", "--gpus", "0,1"), cwd=tmp_path,
                            env=hog_env({"TERM": "xterm-256color"}), stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True, preexec_fn=take_terminal)
    track(proc)
    os.close(slave)
    try:
        leaders = wait_pid_files(pids, 2, "leader_*")
        # keep the terminal's buffer drained while the live view runs
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            try:
                os.read(master, 65536)
            except OSError:
                break
    finally:
        os.close(master)          # hang up: SIGHUP to the foreground process group
    log = tmp_path / "output" / ".hog" / "runner.log"
    wait_for(log.exists, 10, what="runner.log after the hang-up")
    time.sleep(0.3)
    assert proc.poll() is None, "hog died when its terminal went away"
    assert all(pid_alive(p) for p in leaders), "the hang-up killed a job"
    (tmp_path / "release").touch()
    assert proc.wait(30) == 0
    dirs = job_dirs(tmp_path)
    assert len(dirs) == 3
    assert all(marker(d) == "SUCCESS" for d in dirs)
    assert "job_2" in log.read_text()
