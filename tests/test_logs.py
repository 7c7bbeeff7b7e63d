"""``hog logs DIR JOB [--err] [-f]``: a job's output by number, folder name or name;
-f follows it as it is written and exits once the job has ended."""
import signal
import subprocess
import time

from .harness import (
    assert_no_traceback,
    hog_argv,
    hog_env,
    job_dir,
    job_file,
    marker,
    run_hog,
    start_hog,
    track,
    wait_for,
)


class Follow:
    """``hog logs ... -f`` in the background, its stdout and stderr in files."""

    def __init__(self, cwd, *args):
        self.out_path, self.err_path = cwd / "follow.out", cwd / "follow.err"
        self._files = [open(self.out_path, "wb"), open(self.err_path, "wb")]
        self.proc = track(subprocess.Popen(hog_argv("logs", *args), cwd=str(cwd), env=hog_env(),
                                           stdin=subprocess.DEVNULL, stdout=self._files[0],
                                           stderr=self._files[1]))

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout=20) -> int:
        rc = self.proc.wait(timeout)
        for f in self._files:
            f.close()
        return rc


def test_logs_prints_a_jobs_output_by_number_folder_name_or_name(tmp_path):
    job_file(tmp_path, "echo zero", "echo one; echo one-err >&2  # hog: name=trainer")
    assert run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0").returncode == 0
    for ref in ("1", "job_1", "trainer"):
        r = run_hog(tmp_path, "logs", "output", ref)
        assert (r.returncode, r.stdout, r.stderr) == (0, "one\n", ""), ref
    r = run_hog(tmp_path, "logs", "output", "trainer", "--err")
    assert (r.returncode, r.stdout) == (0, "one-err\n")
    assert run_hog(tmp_path, "logs", "output", "0").stdout == "zero\n"


def test_logs_passes_output_through_byte_for_byte(tmp_path):
    job_file(tmp_path, r"printf 'a\r\nno newline at the end \xff'")
    run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    r = subprocess.run(hog_argv("logs", "output", "0"), cwd=str(tmp_path), env=hog_env(),
                       capture_output=True, timeout=30)
    assert r.stdout == b"a\r\nno newline at the end \xff"


def test_follow_prints_output_as_it_comes_and_exits_when_the_job_ends(tmp_path):
    job_file(tmp_path, "echo first; while [ ! -e next ]; do sleep 0.05; done; echo second; "
                       "while [ ! -e end ]; do sleep 0.05; done; echo last")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    wait_for(lambda: (job_dir(tmp_path, 0) / "job_0.OUT").exists(), 15, what="job_0 to start")
    follow = Follow(tmp_path, "output", "job_0", "-f")
    wait_for(lambda: follow.out == "first\n", 15, what="the output so far")
    (tmp_path / "next").touch()
    wait_for(lambda: follow.out == "first\nsecond\n", 15, what="the new line")
    assert follow.proc.poll() is None, "logs -f exited while the job runs"
    (tmp_path / "end").touch()
    assert follow.wait() == 0
    assert follow.out == "first\nsecond\nlast\n"
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    assert hog.wait() == 0


def test_follow_waits_for_a_queued_job_and_follows_its_retry_too(tmp_path):
    job_file(tmp_path, "while [ ! -e go ]; do sleep 0.05; done",
             "echo attempt $HOG_ATTEMPT; while [ ! -e again$HOG_ATTEMPT ]; do sleep 0.05; done;"
             " [ $HOG_ATTEMPT = 2 ]  # hog: name=flaky retries=1")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    wait_for(lambda: (job_dir(tmp_path, 0) / "job_0.OUT").exists(), 15, what="job_0 to start")
    follow = Follow(tmp_path, "output", "flaky", "-f")
    wait_for(lambda: "not started yet" in follow.err, 15, what="a note that flaky is queued")
    (tmp_path / "go").touch()
    wait_for(lambda: follow.out == "attempt 1\n", 15, what="the first attempt's output")
    (tmp_path / "again1").touch()
    wait_for(lambda: follow.out == "attempt 1\nattempt 2\n", 15,
             what="the second attempt's output")
    assert follow.proc.poll() is None
    (tmp_path / "again2").touch()
    assert follow.wait() == 0
    assert hog.wait() == 0


def test_ctrl_c_leaves_follow_quietly_with_130(tmp_path):
    job_file(tmp_path, "echo hi; while [ ! -e end ]; do sleep 0.05; done")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    wait_for(lambda: (job_dir(tmp_path, 0) / "job_0.OUT").exists(), 15, what="job_0 to start")
    follow = Follow(tmp_path, "output", "0", "-f")
    wait_for(lambda: follow.out == "hi\n", 15, what="the output so far")
    follow.proc.send_signal(signal.SIGINT)
    assert follow.wait() == 130
    assert follow.err == ""
    assert hog.alive()
    (tmp_path / "end").touch()
    assert hog.wait() == 0


def test_logs_errors_are_one_line_with_exit_code_2(tmp_path):
    job_file(tmp_path, "echo a  # hog: name=twin", "echo b  # hog: name=twin")
    run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    cases = {("logs", "output", "nope"): "no job 'nope'",
             ("logs", "output", "99"): "no job '99'",
             ("logs", "nowhere", "0"): "nowhere: no such directory",
             ("logs", "output", "twin"): "2 jobs in output are named 'twin'"}
    for args, words in cases.items():
        r = run_hog(tmp_path, *args)
        assert r.returncode == 2, args
        assert words in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert_no_traceback(r.stderr)
        assert r.stdout == ""


def test_logs_of_a_job_that_has_not_run_says_so(tmp_path):
    run_hog(tmp_path, "add", "output", "--", "echo later")
    start = time.monotonic()
    r = run_hog(tmp_path, "logs", "output", "0")
    assert r.returncode == 1 and "no output yet (queued)" in r.stderr
    assert time.monotonic() - start < 10
