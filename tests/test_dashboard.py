"""The live dashboard on a real pseudo-terminal: a row per slot with its job and the
job's last output line, counts with a progress bar and ETA, the latest failures,
redrawn a few times a second at most, never once per job."""
import re

from .harness import assert_no_traceback, job_dirs, job_file, marker
from .terminal import Terminal, rows_with

WAIT = "while [ ! -e release ]; do sleep 0.05; done"
FRAME = "last output"          # the slot table's header: drawn once per frame


def test_each_slot_row_shows_its_job_and_the_last_line_the_job_wrote(tmp_path):
    job_file(tmp_path,
             f"echo warming up; echo step-7-of-9; {WAIT}  # hog: name=trainer",
             f"echo first; echo progress-from-stderr >&2; {WAIT}")
    term = Terminal(tmp_path, "--job_file", "jobs.txt", "--gpus", "3,5")
    term.wait_for(lambda t: rows_with(t, "trainer", "step-7-of-9")
                  and rows_with(t, "job_1", "progress-from-stderr"),
                  what="both slot rows with their job's last output line")
    text = term.text
    row0 = rows_with(text, "trainer", "step-7-of-9")[-1]
    assert re.match(r"\s*0\s+3\s+trainer\s+\d+s\s+step-7-of-9", row0), row0
    row1 = rows_with(text, "job_1", "progress-from-stderr")[-1]
    assert re.match(r"\s*1\s+5\s+job_1\s+\d+s\s+progress-from-stderr", row1), row1
    (tmp_path / "release").touch()
    assert term.wait_exit() == 0
    assert_no_traceback(term.text)


def test_an_idle_slot_says_idle_and_a_cpu_slot_gets_its_own_row(tmp_path):
    job_file(tmp_path, f"echo on-the-cpu; {WAIT}  # hog: gpus=0 name=cpujob")
    term = Terminal(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    term.wait_for(lambda t: rows_with(t, "cpu0", "cpujob", "on-the-cpu"),
                  what="a cpu0 row for the CPU-only job")
    assert rows_with(term.text, " 0 ", "idle") and rows_with(term.text, " 1 ", "idle")
    (tmp_path / "release").touch()
    assert term.wait_exit() == 0


def test_counts_progress_and_eta_are_shown_while_jobs_run(tmp_path):
    job_file(tmp_path, "true", "true", "true", WAIT, WAIT)
    term = Terminal(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    term.wait_for(lambda t: rows_with(t, "3 done", "0 failed", "2 running", "0 queued"),
                  what="the counts line with 3 done and 2 running")
    head = term.wait_for(lambda t: rows_with(t, "hog", "3/5", "60%", "ETA"),
                         what="the progress line at 3/5 with an ETA")
    assert "elapsed" in head[-1]
    (tmp_path / "release").touch()
    assert term.wait_exit() == 0


def test_latest_failures_show_while_the_sweep_runs_with_exit_code_and_err_path(tmp_path):
    job_file(tmp_path, "echo boom >&2; exit 7", "exit 4  # hog: name=second", WAIT)
    term = Terminal(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    def failure_lines(t):
        """The two lines under the last drawn failures heading, once both are drawn."""
        if "latest failures" not in t:
            return None
        lines = t[t.rindex("latest failures"):].splitlines()[1:3]
        return lines if len(lines) == 2 and "job_0.ERR" in lines[1] else None

    lines = term.wait_for(failure_lines, what="the failures section with both failed jobs")
    assert "second" in lines[0] and "exit 4" in lines[0] and "output/job_1/job_1.ERR" in lines[0]
    assert "job_0" in lines[1] and "exit 7" in lines[1] and "output/job_0/job_0.ERR" in lines[1]
    assert term.proc.poll() is None, "the failures must show while the sweep still runs"
    (tmp_path / "release").touch()
    assert term.wait_exit() == 1


def test_redraws_are_bounded_by_time_not_by_the_number_of_jobs(tmp_path):
    job_file(tmp_path, *["true"] * 300, "sleep 1.5")
    term = Terminal(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0")
    assert term.wait_exit(60) == 0
    frames = term.raw.count(FRAME)
    # rich redraws 4 times a second; allow for the first and the last frame
    assert frames <= 4 * term.wall_s * 1.25 + 3, (frames, term.wall_s)
    assert frames >= 3, f"only {frames} frame(s) in {term.wall_s:.1f}s: not kept up to date"
    assert all(marker(d) == "SUCCESS" for d in job_dirs(tmp_path))
