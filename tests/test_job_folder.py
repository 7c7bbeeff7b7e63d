"""The job folder: <output_dir>/job_N/ with INFO (YAML), job_N.OUT, job_N.ERR and,
once the job has ended, exactly one of SUCCESS / FAILURE."""
import os
import socket
import stat
import subprocess
from datetime import datetime

import pytest

from .harness import (
    INFO_FIELDS,
    err,
    hog_argv,
    hog_env,
    info,
    job_dir,
    job_dirs,
    job_file,
    marker,
    markers,
    out,
    run_hog,
    start_hog,
    wait_for,
)


def iso(text):
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, f"{text!r} has no UTC offset"
    return value


def test_folders_are_numbered_from_0_in_source_order(tmp_path):
    job_file(tmp_path, *[f"sleep 0.0{9 - i}; echo line-{i}" for i in range(10)])
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,1")
    assert r.returncode == 0, r.stderr
    dirs = job_dirs(tmp_path)
    assert [d.name for d in dirs] == [f"job_{i}" for i in range(10)]
    for i, d in enumerate(dirs):
        assert out(d) == f"line-{i}\n"
        assert info(d)["index"] == i
        assert sorted(os.listdir(d)) == sorted(["INFO", f"job_{i}.OUT", f"job_{i}.ERR",
                                                "SUCCESS"])


def test_info_is_yaml_with_every_field_of_a_succeeded_job(tmp_path):
    job_file(tmp_path, "echo $$; sleep 0.2")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "3")
    assert r.returncode == 0, r.stderr
    d = job_dir(tmp_path, 0)
    data = info(d)
    for key in INFO_FIELDS:
        assert key in data, f"INFO lacks {key}"
    assert data["name"] == "job_0"
    assert data["index"] == 0
    assert data["command"] == "echo $$; sleep 0.2"
    assert data["gpus"] == ["3"]
    assert data["slot"] == 0
    assert data["host"] == socket.gethostname()
    assert data["pid"] == int(out(d))
    assert data["attempt"] == 1
    assert data["status"] == "succeeded"
    assert data["exit_code"] == 0
    assert data["signal"] is None
    started, ended = iso(data["started"]), iso(data["ended"])
    assert started <= ended
    assert isinstance(data["duration_s"], (int, float))
    assert 0.15 <= data["duration_s"] < 10
    assert abs((ended - started).total_seconds() - data["duration_s"]) < 0.05


def test_info_records_a_failed_jobs_exit_code(tmp_path):
    job_file(tmp_path, "echo oops >&2; exit 3")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 1
    d = job_dir(tmp_path, 0)
    assert marker(d) == "FAILURE"
    data = info(d)
    assert data["status"] == "failed"
    assert data["exit_code"] == 3
    assert data["signal"] is None
    assert err(d) == "oops\n"


def test_info_records_the_signal_that_killed_a_job(tmp_path):
    job_file(tmp_path, "kill -KILL $$")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 1
    d = job_dir(tmp_path, 0)
    assert marker(d) == "FAILURE"
    data = info(d)
    assert data["status"] == "failed"
    assert data["signal"] in ("SIGKILL", "KILL", 9)
    assert data["exit_code"] in (None, 137)


def test_awkward_commands_survive_the_yaml_round_trip(tmp_path):
    commands = [
        "echo 'key: value' \"quoted \\\"inner\\\"\" # not: yaml",
        "echo '- [a, b]' '{x: 1}' '&anchor' '*alias' '!tag' '%directive' '@at' '`tick`'",
        "echo héllo ✓ 日本語 'tab\there'",
        "echo null; echo true; echo 123; echo 1e3; echo ~",
        "echo 'single '\"'\"' quote'",
    ]
    job_file(tmp_path, *commands)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    for i, command in enumerate(commands):
        assert info(job_dir(tmp_path, i))["command"] == command
        assert info(job_dir(tmp_path, i))["name"] == f"job_{i}"


def test_the_name_from_a_directive_survives_yaml(tmp_path):
    job_file(tmp_path, "true # hog: name=yes", "true # hog: name=123", "true # hog: name=null")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert [info(d)["name"] for d in job_dirs(tmp_path)] == ["yes", "123", "null"]


def test_exactly_one_marker_matching_the_exit_status(tmp_path):
    job_file(tmp_path, "true", "false", "exit 0", "exit 255", "echo x | grep -q y")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert r.returncode == 1
    assert [marker(d) for d in job_dirs(tmp_path)] == \
        ["SUCCESS", "FAILURE", "SUCCESS", "FAILURE", "FAILURE"]
    assert [info(d)["exit_code"] for d in job_dirs(tmp_path)] == [0, 1, 0, 255, 1]


def test_the_marker_holds_the_final_info(tmp_path):
    job_file(tmp_path, "echo ok", "exit 4")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 1
    for d, status, code in zip(job_dirs(tmp_path), ("succeeded", "failed"), (0, 4)):
        body = (d / marker(d)).read_text()
        assert body == (d / "INFO").read_text()
        assert (info(d)["status"], info(d)["exit_code"]) == (status, code)


def test_stdout_and_stderr_go_to_separate_files(tmp_path):
    job_file(tmp_path, "echo to-out; echo to-err >&2; echo more-out; printf 'no newline' >&2")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    d = job_dir(tmp_path, 0)
    assert out(d) == "to-out\nmore-out\n"
    assert err(d) == "to-err\nno newline"
    assert "to-out" not in r.stdout + r.stderr   # job output is not mixed into hog's


def test_a_job_without_output_still_has_empty_out_and_err_files(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0
    d = job_dir(tmp_path, 0)
    assert out(d) == "" and err(d) == ""


def test_large_and_binary_output_is_kept_byte_for_byte(tmp_path):
    job_file(tmp_path, "head -c 3000000 /dev/urandom > data.bin; cat data.bin; "
                       "seq 1 200000 >&2")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    d = job_dir(tmp_path, 0)
    assert (d / "job_0.OUT").read_bytes() == (tmp_path / "data.bin").read_bytes()
    assert err(d).splitlines()[-1] == "200000"
    assert len(err(d).splitlines()) == 200000


def test_the_job_cannot_read_hogs_stdin(tmp_path):
    # hog's stdin is a pipe that stays open: a job reading it would block forever
    job_file(tmp_path, "cat; echo read-done")
    proc = subprocess.Popen(hog_argv("--job_file", "jobs.txt", "--gpus", "0"), cwd=tmp_path,
                            env=hog_env(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        rc = proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the job read hog's stdin and blocked")
    finally:
        proc.stdin.close()
    assert rc == 0
    assert out(job_dir(tmp_path, 0)) == "read-done\n"


def test_while_running_output_is_on_disk_info_says_running_and_there_is_no_marker(tmp_path):
    job_file(tmp_path, "echo first-line; echo err-line >&2; "
                       "while [ ! -e release ]; do sleep 0.05; done; echo last-line")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    d = job_dir(tmp_path, 0)
    wait_for(lambda: (d / "job_0.OUT").exists() and out(d) == "first-line\n", 15,
             what="streamed output")
    wait_for(lambda: (d / "job_0.ERR").exists() and err(d) == "err-line\n", 5,
             what="streamed stderr")
    wait_for(lambda: (d / "INFO").exists(), 5, what="INFO at start")
    running = info(d)
    assert running["status"] == "running"
    assert running["ended"] is None
    assert running["exit_code"] is None
    assert isinstance(running["pid"], int)
    iso(running["started"])
    assert markers(d) == []
    (tmp_path / "release").touch()
    assert hog.wait(20) == 0
    assert out(d) == "first-line\nlast-line\n"
    assert marker(d) == "SUCCESS"
    assert info(d)["status"] == "succeeded"
    assert info(d)["started"] == running["started"]


def test_custom_output_dir_and_prefix_shape_the_paths(tmp_path):
    job_file(tmp_path, "echo hi")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0",
                "--output_dir", "runs/today", "--prefix", "exp")
    assert r.returncode == 0, r.stderr
    d = tmp_path / "runs" / "today" / "exp0"
    assert (d / "exp0.OUT").read_text() == "hi\n"
    assert (d / "exp0.ERR").exists()
    assert (d / "SUCCESS").exists()
    assert info(d)["index"] == 0


def test_hog_state_folder_is_private(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0
    state = tmp_path / "output" / ".hog"
    assert state.is_dir()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_an_unschedulable_job_gets_a_folder_with_info_and_failure(tmp_path):
    job_file(tmp_path, "echo never # hog: gpus=3")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert r.returncode == 1
    d = job_dir(tmp_path, 0)
    assert marker(d) == "FAILURE"
    data = info(d)
    for key in INFO_FIELDS:
        assert key in data, f"INFO lacks {key}"
    assert data["status"] == "unschedulable"
    assert data["command"] == "echo never # hog: gpus=3"
    assert out(d) == ""
    assert "3" in err(d)


@pytest.mark.parametrize("n", [25])
def test_many_short_jobs_each_get_a_complete_folder(tmp_path, n):
    job_file(tmp_path, *[f"echo {i}; echo e{i} >&2; exit $(( {i} % 4 == 3 ))" for i in range(n)])
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,1,1")
    assert r.returncode == 1
    dirs = job_dirs(tmp_path)
    assert len(dirs) == n
    for i, d in enumerate(dirs):
        assert out(d) == f"{i}\n"
        assert err(d) == f"e{i}\n"
        expected = "FAILURE" if i % 4 == 3 else "SUCCESS"
        assert marker(d) == expected
        assert info(d)["status"] == ("failed" if expected == "FAILURE" else "succeeded")
