"""--wait-for-running names the runner it waits for (pid, GPUs, output directory,
where it was started) in one line and says when it is done waiting;
--wait-for-same-gpus waits only for runners that share a GPU with this one."""
import json
import os

from hog.engine.neighbours import Neighbour, Registry
from hog.proc import proc_start_time
from tests.harness import job_dir, job_file, marker, start_hog, wait_for
from tests.test_scheduling_e2e import wait_file


def _busy_runner(tmp_path, env, gpus="0"):
    """Runner A (out_a) running a job until ``go`` exists."""
    started, go = tmp_path / "a_started", tmp_path / "go"
    job_file(tmp_path, f"touch {started}; {wait_file(go)}", name="a.txt")
    a = start_hog(tmp_path, "--job-file", "a.txt", "--gpus", gpus, "--output-dir", "out_a",
                  env=env)
    wait_for(started.exists, 15, what="runner A's job to start")
    return a, go


def _xdg(tmp_path):
    run_dir = tmp_path / "xdg"
    run_dir.mkdir(mode=0o700)
    return {"XDG_RUNTIME_DIR": str(run_dir)}


def test_the_waiting_line_names_the_runner_its_gpus_and_directories_then_says_when_done(
        tmp_path):
    env = _xdg(tmp_path)
    a, go = _busy_runner(tmp_path, env, gpus="0,0")
    job_file(tmp_path, "echo b", name="b.txt")
    b = start_hog(tmp_path, "--job-file", "b.txt", "--gpus", "1", "--output-dir", "out_b",
                  "--wait-for-running", env=env)
    line = f"--wait-for-running: waiting for hog runner pid {a.pid} (GPUs 0, output " \
           f"{tmp_path / 'out_a'}, started in {tmp_path}), which runs jobs"
    b.wait_output(line, 15)
    assert not (tmp_path / "out_b" / "job_0").exists()
    go.touch()
    assert a.wait(30) == 0, a.output
    assert b.wait(30) == 0, b.output
    assert f"--wait-for-running: done waiting: hog runner pid {a.pid} runs no job now" \
        in b.output
    assert marker(job_dir(tmp_path, 0, "out_b")) == "SUCCESS"


def test_wait_for_same_gpus_ignores_a_busy_runner_on_other_gpus_and_waits_for_one_on_its_own(
        tmp_path):
    env = _xdg(tmp_path)
    a, go = _busy_runner(tmp_path, env, gpus="0")
    job_file(tmp_path, "echo b", name="b.txt")
    other = start_hog(tmp_path, "--job-file", "b.txt", "--gpus", "1", "--output-dir", "out_b",
                      "--wait-for-same-gpus", env=env)
    assert other.wait(30) == 0, other.output        # GPU 1: A is no reason to wait
    assert "waiting for" not in other.output
    same = start_hog(tmp_path, "--job-file", "b.txt", "--gpus", "0,2", "--output-dir",
                     "out_c", "--wait-for-same-gpus", env=env)
    same.wait_output(f"waiting for hog runner pid {a.pid} (GPUs 0,", 15)
    assert not (tmp_path / "out_c" / "job_0").exists()
    go.touch()
    assert same.wait(30) == 0, same.output
    assert a.wait(30) == 0, a.output
    assert marker(job_dir(tmp_path, 0, "out_c")) == "SUCCESS"


def test_a_busy_runner_of_an_older_hog_is_waited_for_by_its_pid(tmp_path):
    parent = os.getppid()
    (tmp_path / str(parent)).write_text(f"{proc_start_time(parent)} 1\n")
    me = Registry(str(tmp_path))
    me.describe(["0"], str(tmp_path / "out"))
    assert me.busy_neighbour() == Neighbour(parent, None)
    assert me.busy_neighbour(same_gpus=True) == Neighbour(parent, None)   # GPUs unknown
    assert Neighbour(parent, None).describe() == f"hog runner pid {parent}"


def test_a_runner_writes_who_it_is_and_removes_its_file_when_it_ends(tmp_path):
    me = Registry(str(tmp_path))
    me.describe(["0", "0", "1"], str(tmp_path / "out"))
    me.update(2)
    data = json.loads((tmp_path / str(os.getpid())).read_text())
    assert data["busy"] == 1 and data["gpus"] == ["0", "0", "1"]
    assert data["output_dir"] == str(tmp_path / "out") and data["cwd"] == os.getcwd()
    me.close()
    assert not (tmp_path / str(os.getpid())).exists()
