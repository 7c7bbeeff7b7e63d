"""What hog prints: plain lines when stdout is not a terminal, a live view on one,
and always a final summary naming each failed job, its exit code and its .ERR file."""
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from .harness import (
    assert_no_traceback,
    hog_argv,
    hog_env,
    job_dir,
    job_dirs,
    job_file,
    marker,
    run_hog,
    start_hog,
    wait_for,
)

FORCE_HINT = re.compile(r"again|twice|second|force", re.IGNORECASE)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def mentions(text, name):
    return [line for line in text.splitlines() if re.search(rf"\b{re.escape(name)}\b", line)]


def err_path_re(index):
    return re.compile(rf"(^|[\s/])output/job_{index}/job_{index}\.ERR\b")


def summary_line_for(text, index):
    lines = [line for line in mentions(text, f"job_{index}") if err_path_re(index).search(line)]
    assert lines, f"no summary line names job_{index} and its .ERR file:\n{text}"
    return lines[-1]


# ------------------------------------------------------------------ plain
def test_plain_output_has_one_line_per_job_start_and_one_per_end(tmp_path):
    job_file(tmp_path, "echo a", "sleep 0.1", "echo c")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert r.returncode == 0, r.stderr
    for i in range(3):
        lines = mentions(r.stdout, f"job_{i}")
        assert len(lines) == 2, f"job_{i}: {lines}"
        assert "start" in lines[0].lower()
        assert "start" not in lines[1].lower()
    assert "\x1b[" not in r.stdout, "terminal escapes in non-terminal output"
    assert_no_traceback(r.stdout + r.stderr)


def test_plain_end_line_of_a_failed_job_gives_its_exit_code(tmp_path):
    job_file(tmp_path, "exit 37")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 1
    end = mentions(r.stdout, "job_0")[-1]
    assert "37" in end


def test_plain_lines_appear_while_jobs_run_not_only_at_the_end(tmp_path):
    job_file(tmp_path, "while [ ! -e release ]; do sleep 0.05; done")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    wait_for(lambda: mentions(hog.stdout, "job_0"), 15,
             what="the start line of job_0 in hog's (file) stdout")
    (tmp_path / "release").touch()
    assert hog.wait(20) == 0
    assert len(mentions(hog.stdout, "job_0")) == 2


def test_final_summary_lists_failed_jobs_with_exit_code_and_err_path(tmp_path):
    job_file(tmp_path, "echo fine", "echo bad >&2; exit 3", "true", "exit 5")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 1
    text = r.stdout + r.stderr
    assert re.search(r"\b3\b", summary_line_for(text, 1))
    assert re.search(r"\b5\b", summary_line_for(text, 3))
    for ok in (0, 2):
        assert not err_path_re(ok).search(text), f"job_{ok} succeeded but is listed"


def test_summary_lists_timeouts_and_unschedulable_jobs_too(tmp_path):
    job_file(tmp_path, "sleep 10 # hog: timeout=0.3s", "true # hog: gpus=4")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=30)
    assert r.returncode == 1
    text = r.stdout + r.stderr
    assert "timeout" in summary_line_for(text, 0)
    assert "unschedulable" in summary_line_for(text, 1)


def test_summary_after_a_clean_run_gives_the_number_of_jobs(tmp_path):
    job_file(tmp_path, *["true"] * 7)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert r.returncode == 0
    rest = [line for line in r.stdout.splitlines() if not re.search(r"\bjob_\d+\b", line)]
    assert any(re.search(r"\b7\b", line) for line in rest), r.stdout


def test_quiet_prints_no_per_job_lines_but_the_summary(tmp_path):
    job_file(tmp_path, "echo a", "echo b", "exit 4")
    for flag in ("--quiet", "-q"):
        r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", flag,
                    "--output_dir", f"out{flag}")
        assert r.returncode == 1
        text = r.stdout + r.stderr
        assert mentions(text, "job_0") == [] and mentions(text, "job_1") == [], text
        line = [x for x in mentions(text, "job_2") if "job_2.ERR" in x]
        assert line and "4" in line[0], text


def test_quiet_clean_run_is_silent_about_jobs(tmp_path):
    job_file(tmp_path, "echo a", "echo b")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--quiet")
    assert r.returncode == 0
    assert not re.search(r"\bjob_\d", r.stdout + r.stderr)


# ------------------------------------------------------------------ live view
def run_in_pty(cwd, *args, timeout=30, on_output=None):
    """Run hog with stdin/stdout/stderr on a pseudo-terminal; (exit code, text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = hog_env({"TERM": "xterm-256color", "COLUMNS": None, "LINES": None})
    proc = subprocess.Popen(hog_argv(*args), cwd=str(cwd), env=env, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                pytest.fail("hog under a terminal did not exit:\n"
                            + ANSI.sub("", b"".join(chunks).decode(errors="replace")))
            ready, _, _ = select.select([master], [], [], 0.05)
            data = b""
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:      # EIO: every holder of the terminal has closed it
                    data = b""
                if data:
                    chunks.append(data)
            if on_output and proc.poll() is None:
                on_output(proc, ANSI.sub("", b"".join(chunks).decode(errors="replace")))
            if not data and proc.poll() is not None:
                # hog is gone: drain what is left
                while select.select([master], [], [], 0.2)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    chunks.append(data)
                break
        rc = proc.wait(10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return rc, b"".join(chunks).decode(errors="replace")


def assert_terminal_restored(raw):
    hidden = raw.rfind("\x1b[?25l")
    if hidden >= 0:
        assert raw.rfind("\x1b[?25h") > hidden, "the cursor was left hidden"


def test_live_view_on_a_terminal_exits_cleanly_and_prints_the_summary(tmp_path):
    job_file(tmp_path, "sleep 0.3; echo a", "sleep 0.3", "echo c")
    rc, raw = run_in_pty(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    text = ANSI.sub("", raw)
    assert rc == 0, text
    assert_no_traceback(text)
    assert_terminal_restored(raw)
    assert "succeeded" in text.lower()
    assert all(marker(d) == "SUCCESS" for d in job_dirs(tmp_path))


def test_live_view_summary_names_failed_jobs_and_their_err_files(tmp_path):
    job_file(tmp_path, "echo ok", "exit 9")
    rc, raw = run_in_pty(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    text = ANSI.sub("", raw)
    assert rc == 1, text
    assert re.search(r"\b9\b", summary_line_for(text, 1))
    assert_terminal_restored(raw)


def test_ctrl_c_twice_on_a_terminal_stops_the_live_view_cleanly(tmp_path):
    job_file(tmp_path, "touch started; sleep 300", "sleep 300")
    sent = []

    def interrupt(proc, text):
        if not sent and (tmp_path / "started").exists():
            os.killpg(proc.pid, signal.SIGINT)
            sent.append(len(text))
        elif len(sent) == 1 and FORCE_HINT.search(text[sent[0]:]):
            os.killpg(proc.pid, signal.SIGINT)
            sent.append(len(text))

    rc, raw = run_in_pty(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--grace", "2",
                         timeout=40, on_output=interrupt)
    text = ANSI.sub("", raw)
    assert len(sent) == 2, text
    assert rc == 130, text
    assert_no_traceback(text)
    assert_terminal_restored(raw)
    assert marker(job_dir(tmp_path, 0)) == "FAILURE"
    assert len(job_dirs(tmp_path)) == 1


def test_display_plain_on_a_terminal_prints_plain_lines(tmp_path):
    job_file(tmp_path, "echo a", "echo b")
    rc, raw = run_in_pty(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--display", "plain")
    assert rc == 0
    text = ANSI.sub("", raw)
    assert len(mentions(text, "job_0")) == 2
    assert len(mentions(text, "job_1")) == 2


def test_display_plain_without_a_terminal_has_no_escape_codes_even_with_failures(tmp_path):
    job_file(tmp_path, "exit 1", "echo ok")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", env={"TERM": "xterm"})
    assert "\x1b[" not in r.stdout + r.stderr
