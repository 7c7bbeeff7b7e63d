"""``hog attach DIR``: the dashboard of a runner started with --detach, from another
process; leaving it (Ctrl-C, q) never stops the runner; when the runner ends,
attach shows the final state and exits 0. Without a terminal: plain lines."""
import re
import subprocess
import time

from .harness import (
    assert_no_traceback,
    hog_argv,
    hog_env,
    job_dir,
    job_dirs,
    job_file,
    marker,
    pid_alive,
    run_hog,
    track,
    wait_for,
)
from .terminal import Terminal, rows_with


def release_gate(i):
    return f"while [ ! -e release{i} ]; do sleep 0.05; done"


def start_detached(tmp_path, *lines, gpus="0,1"):
    """A sweep whose runner was started with --detach; returns the runner's pid once
    its first jobs run."""
    job_file(tmp_path, *lines)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", gpus, "--detach")
    assert r.returncode == 0, r.stderr
    pid = int(re.search(r"pid (\d+)", r.stdout).group(1))
    wait_for(lambda: (job_dir(tmp_path, 0) / "job_0.OUT").exists(), 20,
             what="the detached runner's first job")
    return pid


def release_all(tmp_path, n):
    for i in range(n):
        (tmp_path / f"release{i}").touch()


def test_attach_on_a_terminal_shows_the_dashboard_of_a_detached_runner(tmp_path):
    runner = start_detached(tmp_path, f"echo epoch-1-loss-0.5; {release_gate(0)}",
                            "echo oops >&2; exit 6  # hog: name=broken",
                            f"echo second-slot-output; {release_gate(1)}  # hog: name=other")
    term = Terminal(tmp_path, "attach", "output")
    term.wait_for(lambda t: rows_with(t, "job_0", "epoch-1-loss-0.5")
                  and rows_with(t, "other", "second-slot-output")
                  and rows_with(t, "broken", "exit 6", "output/job_1/job_1.ERR"),
                  what="slot rows with last output lines and the failed job")
    assert rows_with(term.text, "1 done", "1 failed", "2 running", "0 queued") or \
        rows_with(term.text, "0 done", "1 failed", "2 running", "0 queued")
    release_all(tmp_path, 2)
    assert term.wait_exit(30) == 0, term.text
    tail = term.text[term.text.rindex("the runner has ended"):]
    assert "2 succeeded, 1 failed" in tail
    assert rows_with(term.text, "hog", "3/3", "100%", "done")
    assert_no_traceback(term.text)
    wait_for(lambda: not pid_alive(runner), 10, what="the runner's exit")


def _leave_and_check_runner_goes_on(tmp_path, leave):
    runner = start_detached(tmp_path, f"echo running-a; {release_gate(0)}",
                            f"echo running-b; {release_gate(1)}")
    term = Terminal(tmp_path, "attach", "output")
    term.wait_for(lambda t: rows_with(t, "job_0", "running-a") and rows_with(t, "job_1",
                                                                          "running-b"),
                  what="both running jobs on the dashboard")
    leave(term)
    rc = term.wait_exit(10)
    assert "its runner goes on" in term.text
    assert pid_alive(runner), "leaving attach stopped the runner"
    assert not (job_dir(tmp_path, 0) / "FAILURE").exists()
    release_all(tmp_path, 2)
    wait_for(lambda: not pid_alive(runner), 20, what="the runner to finish its jobs")
    assert [marker(d) for d in job_dirs(tmp_path)] == ["SUCCESS", "SUCCESS"]
    return rc


def test_ctrl_c_leaves_attach_and_the_runner_goes_on(tmp_path):
    assert _leave_and_check_runner_goes_on(tmp_path, lambda term: term.interrupt()) == 130


def test_q_leaves_attach_and_the_runner_goes_on(tmp_path):
    assert _leave_and_check_runner_goes_on(tmp_path, lambda term: term.type(b"q")) == 0


def test_attach_without_a_terminal_prints_a_line_per_job_start_and_end(tmp_path):
    runner = start_detached(tmp_path, f"echo a; {release_gate(0)}", "exit 3  # hog: name=bad",
                            f"{release_gate(1)}  # hog: name=late", gpus="0")
    log = tmp_path / "attach.out"
    with open(log, "w") as out:
        proc = track(subprocess.Popen(hog_argv("attach", "output"), cwd=str(tmp_path),
                                      env=hog_env(), stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT))
        wait_for(lambda: "attached to output" in log.read_text(), 15, what="attach's first line")
        head = log.read_text()
        assert "0 succeeded, 0 failed, 1 running, 2 queued" in head
        assert re.search(r"start job_0 slot 0 gpus 0 pid \d+", head)
        (tmp_path / "release0").touch()
        wait_for(lambda: "start late" in log.read_text(), 15, what="the start line of 'late'")
        (tmp_path / "release1").touch()
        assert proc.wait(30) == 0
    text = log.read_text()
    assert "\x1b[" not in text
    assert_no_traceback(text)
    order = [m.group(0) for m in re.finditer(r"(start|done |FAIL ) ?\S+", text)]
    assert order == ["start job_0", "done job_0", "start bad", "FAIL bad", "start late",
                     "done late"], text
    assert re.search(r"FAIL bad exit 3", text)
    assert "the runner has ended: 2 succeeded, 1 failed" in text
    wait_for(lambda: not pid_alive(runner), 10, what="the runner's exit")


def test_attach_to_a_sweep_without_a_runner_shows_its_state_and_exits_0(tmp_path):
    job_file(tmp_path, "true", "exit 2")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 1
    r = run_hog(tmp_path, "attach", "output")
    assert r.returncode == 0
    assert "no runner is active on output: 1 succeeded, 1 failed, 0 running, 0 queued" \
        in r.stdout
    assert "job_1 exit 2" in r.stdout


def test_attach_errors_are_one_line_with_exit_code_2(tmp_path):
    for args in (("attach", "nowhere"), ("attach",)):
        r = run_hog(tmp_path, *args)
        assert r.returncode == 2
        assert_no_traceback(r.stderr)
    r = run_hog(tmp_path, "attach", "nowhere")
    assert r.stderr.strip().count("\n") == 0 and "nowhere" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run_hog(tmp_path, "attach", "empty")
    assert r.returncode == 2 and "no hog sweep here" in r.stderr


def test_attach_right_after_detach_waits_for_the_runner_to_register(tmp_path):
    # what `hog --detach` leaves before its runner has opened the store: the log's header
    assert run_hog(tmp_path, "add", "output", "--", "sleep 0.5").returncode == 0
    log = tmp_path / "output" / ".hog" / "runner.log"
    log.write_text("\n--- hog started 2024-01-01 00:00:00: --job_file jobs.txt\n")
    attach = track(subprocess.Popen(hog_argv("attach", "output"), cwd=str(tmp_path),
                                    env=hog_env(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    time.sleep(1.5)       # the runner is slow to start; attach must not give up meanwhile
    assert attach.poll() is None
    job_file(tmp_path, "true")
    runner = subprocess.run(hog_argv("--job_file", "jobs.txt", "--gpus", "0"), cwd=str(tmp_path),
                            env=hog_env(), stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=30)
    assert runner.returncode == 0
    text, _ = attach.communicate(timeout=20)
    assert attach.returncode == 0
    assert "attached to output" in text and "no runner is active" not in text, text
