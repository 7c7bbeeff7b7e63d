"""The command line: the original gpu-hog interface, aliases, exit codes, usage errors."""
import os
import shutil
import subprocess
import sys

import pytest

from .harness import (
    assert_no_traceback,
    hog_env,
    info,
    job_dir,
    job_dirs,
    job_file,
    marker,
    out,
    run_hog,
    start_hog,
    wait_for,
    write,
)


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line message, got:\n{text}"
    return lines[0]


# ------------------------------------------------------------------ exit codes
def test_exit_0_when_every_job_succeeds(tmp_path):
    job_file(tmp_path, "true", "echo ok")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr


def test_exit_1_when_any_job_fails(tmp_path):
    job_file(tmp_path, "true", "exit 7", "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 1
    assert len(job_dirs(tmp_path)) == 3


def test_exit_1_when_a_job_is_unschedulable(tmp_path):
    job_file(tmp_path, "true # hog: gpus=2")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 1


def test_exit_2_for_usage_errors(tmp_path):
    job_file(tmp_path, "true")
    for args in (["--gpus", "0"],                                  # no source
                 ["--job_file", "jobs.txt", "--gpus", "0", "--bogus"],
                 ["--job_file", "jobs.txt", "--gpus", "0", "--grace", "-1"],
                 ["--job_file", "jobs.txt", "--gpus", "0", "--grace", "soon"]):
        r = run_hog(tmp_path, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.strip(), args
        assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


# ------------------------------------------------------------------ help & entry points
def test_help_describes_the_interface_and_exits_0(tmp_path):
    r = run_hog(tmp_path, "--help")
    assert r.returncode == 0
    for word in ("--job_file", "--job_yielder", "--gpus", "--output_dir", "--prefix",
                 "CUDA_VISIBLE_DEVICES"):
        assert word in r.stdout, word
    assert r.stderr == ""


def test_version_is_printed(tmp_path):
    r = run_hog(tmp_path, "--version")
    assert r.returncode == 0
    import hog
    assert hog.__version__ in r.stdout + r.stderr


def test_python_dash_m_hog_runs_a_sweep(tmp_path):
    job_file(tmp_path, "echo via-module")
    r = subprocess.run([sys.executable, "-m", "hog", "--job_file", "jobs.txt", "--gpus", "0"],
                       cwd=tmp_path, env=hog_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "via-module\n"


def test_hog_console_script_runs_a_sweep(tmp_path):
    exe = shutil.which("hog") or os.path.join(os.path.dirname(sys.executable), "hog")
    assert os.path.exists(exe), "the hog console script is not installed"
    job_file(tmp_path, "echo via-script")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", argv0=[exe])
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "via-script\n"


@pytest.mark.parametrize("flags", [
    ["--job_file", "jobs.txt", "--output_dir", "o"],
    ["--job-file", "jobs.txt", "--output-dir", "o"],
    ["--job-file=jobs.txt", "--output-dir=o"],
])
def test_underscore_and_dashed_spellings_are_both_accepted(tmp_path, flags):
    job_file(tmp_path, "echo spelled")
    r = run_hog(tmp_path, *flags, "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert out(tmp_path / "o" / "job_0") == "spelled\n"


def test_dashed_job_yielder_spelling_is_accepted(tmp_path):
    write(tmp_path / "s.py", "def yielder():\n    yield 'echo y'\n")
    r = run_hog(tmp_path, "--job-yielder", "s.py", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "y\n"


def test_output_dir_defaults_to_output_and_prefix_to_job_(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0
    assert (tmp_path / "output" / "job_0" / "job_0.OUT").exists()


def test_prefix_names_the_job_folders_and_files(tmp_path):
    job_file(tmp_path, "echo a", "echo b")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--prefix", "lr_sweep-")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "output").iterdir()
                   if p.is_dir() and not p.name.startswith("."))
    assert names == ["lr_sweep-0", "lr_sweep-1"]
    assert (tmp_path / "output" / "lr_sweep-1" / "lr_sweep-1.OUT").read_text() == "b\n"
    assert info(tmp_path / "output" / "lr_sweep-1")["name"] == "lr_sweep-1"


@pytest.mark.parametrize("prefix", ["", "a/b", ".hidden"])
def test_a_prefix_that_cannot_name_a_folder_is_a_usage_error(tmp_path, prefix):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--prefix", prefix)
    assert r.returncode == 2
    assert_no_traceback(r.stderr)


# ------------------------------------------------------------------ source choice
def test_exactly_one_of_job_file_and_job_yielder_both_is_an_error(tmp_path):
    job_file(tmp_path, "true")
    write(tmp_path / "s.py", "def yielder():\n    yield 'true'\n")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--job_yielder", "s.py", "--gpus", "0")
    assert r.returncode == 2
    assert "job_file" in r.stderr or "job-file" in r.stderr
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_exactly_one_of_job_file_and_job_yielder_neither_is_an_error(tmp_path):
    r = run_hog(tmp_path, "--gpus", "0")
    assert r.returncode == 2
    assert "job_file" in r.stderr or "job-file" in r.stderr
    assert_no_traceback(r.stderr)


# ------------------------------------------------------------------ input errors
def test_missing_job_file_is_a_one_line_error_exit_2(tmp_path):
    r = run_hog(tmp_path, "--job_file", "missing.txt", "--gpus", "0")
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "missing.txt" in line
    assert_no_traceback(r.stderr)
    assert not (tmp_path / "output").exists()


def test_a_directory_as_job_file_is_a_one_line_error_exit_2(tmp_path):
    (tmp_path / "adir").mkdir()
    r = run_hog(tmp_path, "--job_file", "adir", "--gpus", "0")
    assert r.returncode == 2
    assert "adir" in one_line(r.stderr)
    assert_no_traceback(r.stderr)


def test_bad_gpus_names_the_bad_item(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1,gpu3")
    assert r.returncode == 2
    assert "gpu3" in one_line(r.stderr)
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_an_output_dir_holding_job_folders_but_no_hog_queue_is_refused_and_left_untouched(
        tmp_path):
    folder = tmp_path / "output" / "job_0"
    folder.mkdir(parents=True)
    (folder / "job_0.OUT").write_text("someone else's results\n")
    job_file(tmp_path, "echo second-run")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 2
    assert "output" in one_line(r.stderr)
    assert_no_traceback(r.stderr)
    assert sorted(p.name for p in folder.iterdir()) == ["job_0.OUT"]
    assert (folder / "job_0.OUT").read_text() == "someone else's results\n"


def test_an_existing_output_dir_without_job_folders_is_used(tmp_path):
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "notes.txt").write_text("mine\n")
    (tmp_path / "output" / "job_notes").mkdir()
    job_file(tmp_path, "echo fine")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    assert (tmp_path / "output" / "notes.txt").read_text() == "mine\n"


def test_a_second_hog_with_another_job_file_on_a_live_sweep_is_refused(tmp_path):
    job_file(tmp_path, "while [ ! -e release ]; do sleep 0.05; done", name="slow.txt")
    first = start_hog(tmp_path, "--job_file", "slow.txt", "--gpus", "0")
    wait_for(lambda: (job_dir(tmp_path, 0) / "INFO").exists(), 15, what="first hog's job")
    job_file(tmp_path, "echo second")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 2
    assert "slow.txt" in r.stderr and "jobs.txt" in r.stderr
    assert_no_traceback(r.stderr)
    (tmp_path / "release").touch()
    assert first.wait(20) == 0
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    assert len(job_dirs(tmp_path)) == 1


def test_unknown_verb_like_argument_is_a_usage_error(tmp_path):
    r = run_hog(tmp_path, "frobnicate")
    assert r.returncode == 2
    assert_no_traceback(r.stderr)


@pytest.mark.parametrize("where", ["afile", "afile/sub"])
def test_an_output_dir_that_cannot_be_a_directory_is_a_one_line_error_exit_2(tmp_path, where):
    (tmp_path / "afile").write_text("not a folder\n")
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--output_dir", where)
    assert r.returncode == 2, r.stderr
    assert "afile" in one_line(r.stderr)
    assert_no_traceback(r.stderr)
    assert (tmp_path / "afile").read_text() == "not a folder\n"
