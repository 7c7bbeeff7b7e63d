"""Sweep-wide limits: ``--timeout`` / ``--retries`` for every job (a job's own option
wins), ``--max-failures N`` (then nothing new starts, running jobs finish, exit 1, one
line says why), and ``--job-file -`` (standard input, read as it streams)."""
import sqlite3
import subprocess

from .harness import (
    assert_no_traceback,
    hog_argv,
    hog_env,
    job_file,
    run_hog,
    track,
    wait_for,
)


def rows(tmp_path, directory="output"):
    db = sqlite3.connect(str(tmp_path / directory / ".hog" / "hog.sqlite"))
    try:
        return {r[0]: r[1:] for r in db.execute(
            "SELECT coalesce(name, id), status, attempt, origin FROM jobs")}
    finally:
        db.close()


def test_timeout_applies_to_every_job_without_its_own(tmp_path):
    jobs = job_file(tmp_path, "sleep 5  # hog: name=long",
                    "sleep 0.8; echo ok  # hog: name=own timeout=20s")
    r = run_hog(tmp_path, "--job-file", jobs, "--gpus", "0,0", "--timeout", "0.4s")
    assert r.returncode == 1
    found = rows(tmp_path)
    assert found["long"][0] == "timeout" and found["own"][0] == "succeeded"


def test_retries_applies_to_every_job_without_its_own(tmp_path):
    jobs = job_file(tmp_path, "exit 1  # hog: name=default", "exit 1  # hog: name=own retries=1",
                    "exit 1  # hog: name=none retries=0")
    r = run_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "--retries", "3")
    assert r.returncode == 1
    found = rows(tmp_path)
    assert found["default"][:2] == ("failed", 4) and found["own"][:2] == ("failed", 2)
    assert found["none"][:2] == ("failed", 1)      # its own retries=0 opts out


def test_a_jobs_own_retries_0_holds_when_the_sweep_runs_again_with_retries(tmp_path):
    jobs = job_file(tmp_path, "exit 1  # hog: name=none retries=0", "exit 1  # hog: name=any")
    assert run_hog(tmp_path, "--job-file", jobs, "--gpus", "0").returncode == 1
    assert {k: v[:2] for k, v in rows(tmp_path).items()} == {"none": ("failed", 1),
                                                             "any": ("failed", 1)}
    r = run_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "--retries", "2")  # (resumed)
    assert r.returncode == 1, r.stderr
    # resumed, each failed job runs again; then "any" has 2 retries in all (attempts 2
    # and 3), "none" none
    assert {k: v[:2] for k, v in rows(tmp_path).items()} == {"none": ("failed", 2),
                                                             "any": ("failed", 3)}


def test_bad_sweep_wide_values_are_one_usage_line(tmp_path):
    jobs = job_file(tmp_path, "echo hi")
    for args in (("--timeout", "soon"), ("--retries", "-1"), ("--max-failures", "0")):
        r = run_hog(tmp_path, "--job-file", jobs, "--gpus", "0", *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and args[0] in r.stderr.replace(
            "_", "-"), r.stderr
    assert not (tmp_path / "output").exists()


def test_max_failures_starts_nothing_new_lets_running_jobs_finish_and_exits_1(tmp_path):
    jobs = job_file(tmp_path,
                    "sleep 1.5; echo done  # hog: name=long",
                    "exit 1  # hog: name=f1", "exit 2  # hog: name=f2",
                    *[f"echo {i}  # hog: name=later{i}" for i in range(5)])
    r = run_hog(tmp_path, "--job-file", jobs, "--gpus", "0,0", "--max-failures", "2",
                "--display", "plain")
    assert r.returncode == 1, r.stdout + r.stderr
    found = rows(tmp_path)
    assert found["long"][0] == "succeeded"                 # running: it finished
    assert found["f1"][0] == "failed" and found["f2"][0] == "failed"
    assert all(found[f"later{i}"][0] == "queued" for i in range(5)), found
    said = [line for line in r.stderr.splitlines() if "--max-failures 2" in line]
    assert len(said) == 2, r.stderr      # the moment it happens, and the summary's why
    assert "stopped by --max-failures 2: 2 job(s) failed; no new jobs were started" in r.stderr
    assert "5 not started" in r.stderr
    assert_no_traceback(r.stderr)


def test_job_file_dash_reads_standard_input_as_it_streams(tmp_path):
    log = open(tmp_path / "hog.log", "wb")
    proc = track(subprocess.Popen(hog_argv("--job-file", "-", "--gpus", "0", "--display",
                                           "plain"),
                                  cwd=str(tmp_path), env=hog_env(), stdin=subprocess.PIPE,
                                  stdout=log, stderr=log))
    assert proc.stdin is not None
    proc.stdin.write(b"touch first  # hog: name=first\n")
    proc.stdin.flush()
    wait_for(lambda: (tmp_path / "first").exists(), 15, what="the first job, stdin still open")
    proc.stdin.write(b"touch second\n")
    proc.stdin.close()
    code = proc.wait(timeout=30)
    log.close()
    assert code == 0, (tmp_path / "hog.log").read_text()
    assert (tmp_path / "second").exists()
    found = rows(tmp_path)
    assert found["first"][2] == "<stdin>:1" and found[1][2] == "<stdin>:2"


def test_a_stdin_sweep_resumes_by_identity_when_the_same_lines_are_piped_again(tmp_path):
    def pipe(text):
        return subprocess.run(hog_argv("-j", "-", "-g", "0"), cwd=str(tmp_path), env=hog_env(),
                              input=text, capture_output=True, text=True, timeout=60)
    assert pipe("echo a >> log\nexit 1\n").returncode == 1
    r = pipe("echo a >> log\nexit 1\necho b >> log\n")
    assert r.returncode == 1
    assert (tmp_path / "log").read_text() == "a\nb\n"     # 'a' succeeded: not run again
    assert sorted(s for s, _, _ in rows(tmp_path).values()) == ["failed", "succeeded",
                                                                 "succeeded"]
    other = job_file(tmp_path, "echo c")
    r = run_hog(tmp_path, "-j", other, "-g", "0")          # another source: refused
    assert r.returncode == 2 and "another sweep" in r.stderr


def test_job_file_dash_with_detach_is_refused(tmp_path):
    r = run_hog(tmp_path, "--job-file", "-", "--gpus", "0", "--detach")
    assert r.returncode == 2 and "--detach" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "output").exists()


def test_unschedulable_jobs_count_toward_max_failures_and_nothing_starts_after(tmp_path):
    jobs = job_file(tmp_path, "echo big  # hog: name=big gpus=4",
                    *[f"echo {i}  # hog: name=later{i}" for i in range(3)])
    r = run_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "--max-failures", "1")
    assert r.returncode == 1, r.stderr
    found = rows(tmp_path)
    assert found["big"][0] == "unschedulable"
    assert all(found.get(f"later{i}", ("queued",))[0] == "queued" for i in range(3)), found
    assert "stopped by --max-failures 1" in r.stderr
