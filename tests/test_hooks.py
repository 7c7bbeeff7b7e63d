"""Notification hooks: --on_job_end and --on_finish run a bash command with the
outcome in HOG_* variables; a failing or hanging hook is logged, ended after
--hook_timeout (its whole process group), and never breaks or holds up the sweep."""
from datetime import datetime

from .harness import (
    assert_no_traceback,
    info,
    job_dir,
    job_dirs,
    job_file,
    marker,
    run_hog,
    tagged_pids,
    wait_for,
)

JOB_LINE = ('echo "$HOG_JOB_NAME|$HOG_JOB_INDEX|$HOG_JOB_STATUS|$HOG_JOB_EXIT_CODE|'
            '$HOG_JOB_SIGNAL|$HOG_JOB_DIR|$HOG_JOB_ERR|$HOG_JOB_DURATION_S|$HOG_SUCCEEDED|'
            '$HOG_FAILED|$HOG_TOTAL" >> "$HOOKS_OUT"')
DUMP_ENV = 'env | grep "^HOG_" | sort > "$HOOKS_OUT"'


def hooks_log(tmp_path) -> str:
    path = tmp_path / "output" / ".hog" / "hooks.log"
    return path.read_text() if path.exists() else ""


def test_on_job_end_runs_once_per_job_with_its_outcome(tmp_path):
    job_file(tmp_path, "echo fine", "echo bad >&2; exit 3  # hog: name=bad",
             "sleep 10  # hog: timeout=0.3s name=slow", "true  # hog: gpus=5 name=never")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", "--on_job_end", JOB_LINE,
                env={"HOOKS_OUT": str(tmp_path / "hooks.out")}, timeout=60)
    assert r.returncode == 1
    lines = (tmp_path / "hooks.out").read_text().splitlines()
    rows = {line.split("|")[0]: line.split("|") for line in lines}
    assert len(lines) == 4 and set(rows) == {"job_0", "bad", "slow", "never"}, lines
    out = tmp_path / "output"
    assert rows["job_0"][1:7] == ["0", "succeeded", "0", "", str(out / "job_0"),
                                  str(out / "job_0" / "job_0.ERR")]
    assert rows["bad"][1:5] == ["1", "failed", "3", ""]
    assert rows["slow"][2:5] == ["timeout", "", "SIGTERM"]
    assert rows["never"][2] == "unschedulable"
    assert abs(float(rows["slow"][7]) - info(job_dir(tmp_path, 2))["duration_s"]) < 0.01
    last = rows[lines[-1].split("|")[0]]
    assert last[8:11] == ["1", "3", "4"]    # the counts as of the last end, and the total
    # (a job may end before the runner has read the source's end: no total yet, empty)
    assert {row[10] for row in rows.values()} <= {"4", ""}
    assert "ok in" in hooks_log(tmp_path)


def test_on_finish_gets_the_sweeps_outcome(tmp_path):
    job_file(tmp_path, "true", "exit 4  # hog: name=broken", "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--on_finish", DUMP_ENV,
                env={"HOOKS_OUT": str(tmp_path / "finish.env")})
    assert r.returncode == 1
    env = dict(line.split("=", 1) for line in (tmp_path / "finish.env").read_text().splitlines())
    assert env["HOG_HOOK"] == "on_finish"
    assert env["HOG_SWEEP_STATUS"] == "failed" and env["HOG_EXIT_CODE"] == "1"
    assert (env["HOG_SUCCEEDED"], env["HOG_FAILED"], env["HOG_TOTAL"]) == ("2", "1", "3")
    assert env["HOG_FAILED_JOBS"] == "broken"
    assert env["HOG_SWEEP_DIR"] == str(tmp_path / "output")
    assert env["HOG_NOT_STARTED"] == "0"
    assert "3 job(s) finished" in env["HOG_SUMMARY"]
    assert float(env["HOG_DURATION_S"]) > 0

    job_file(tmp_path, "true", name="ok.txt")
    run_hog(tmp_path, "--job_file", "ok.txt", "--gpus", "0", "--output_dir", "ok",
            "--on_finish", DUMP_ENV, env={"HOOKS_OUT": str(tmp_path / "ok.env")})
    env = dict(line.split("=", 1) for line in (tmp_path / "ok.env").read_text().splitlines())
    assert (env["HOG_SWEEP_STATUS"], env["HOG_EXIT_CODE"]) == ("succeeded", "0")


def test_a_failing_hook_is_logged_and_shown_and_the_sweep_is_unaffected(tmp_path):
    job_file(tmp_path, "true", "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0",
                "--on_job_end", "echo hook-complains >&2; exit 5",
                "--on_finish", "no-such-command-here")
    assert r.returncode == 0, r.stderr
    assert [marker(d) for d in job_dirs(tmp_path)] == ["SUCCESS", "SUCCESS"]
    log = hooks_log(tmp_path)
    assert log.count("hook-complains") == 2
    assert log.count("on_job_end for job_") == 2 and "failed (exit 5)" in log
    assert "on_finish for the sweep failed (exit 127)" in log
    assert "hook: on_job_end for job_0 failed (exit 5)" in r.stderr
    assert "output/.hog/hooks.log" in r.stderr
    assert_no_traceback(r.stdout + r.stderr)


def test_a_hanging_job_hook_neither_delays_the_jobs_nor_outlives_its_timeout(tmp_path, tag):
    job_file(tmp_path, *["true"] * 6)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--on_job_end",
                "echo $HOG_JOB_NAME >> started.txt; sleep 1000", "--hook_timeout", "1",
                timeout=60)
    exited = datetime.now().astimezone()
    assert r.returncode == 0
    ends = [datetime.fromisoformat(info(d)["ended"]) for d in job_dirs(tmp_path)]
    span = (max(ends) - min(ends)).total_seconds()
    # hooks that held up the sweep would spread the 6 jobs over at least 5 s
    assert span < 3.0, f"jobs waited for the hooks: they ended over {span:.2f}s"
    # at exit, queued hooks get --hook_timeout in all; the one running is killed after it
    lag = (exited - max(ends)).total_seconds()
    assert lag < 1 + 1 + 3, f"hog exited {lag:.1f}s after the last job"
    log = hooks_log(tmp_path)
    assert "on_job_end for job_0 did not end within 1s; its processes were killed" in log
    assert "not run: hog was exiting" in log
    assert "did not end within 1s" in r.stderr
    assert tagged_pids(tag) == [], "a hook process outlived hog"


def test_a_hanging_finish_hook_is_awaited_only_up_to_its_timeout(tmp_path, tag):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--on_finish",
                "sleep 1000 & sleep 1000; echo never >> finish.txt", "--hook_timeout", "1.5")
    exited = datetime.now().astimezone()
    assert r.returncode == 0
    lag = (exited - datetime.fromisoformat(info(job_dir(tmp_path, 0))["ended"])).total_seconds()
    assert 1.5 <= lag < 1.5 + 1 + 3, f"hog exited {lag:.1f}s after its job"
    assert not (tmp_path / "finish.txt").exists()
    assert "on_finish for the sweep did not end within 1.5s" in hooks_log(tmp_path)
    assert tagged_pids(tag) == []


def test_background_processes_a_hook_leaves_behind_are_ended(tmp_path, tag):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--on_job_end",
                "sleep 1000 & echo $! > bg.pid")
    assert r.returncode == 0
    assert (tmp_path / "bg.pid").exists()
    assert tagged_pids(tag) == []


def test_a_detached_sweep_runs_its_hooks(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--detach",
                "--on_finish", 'echo "$HOG_SWEEP_STATUS" > done.txt')
    assert r.returncode == 0
    wait_for(lambda: (tmp_path / "done.txt").exists()
             and (tmp_path / "done.txt").read_text() == "succeeded\n", 20,
             what="the finish hook of the detached runner")


def test_a_bad_hook_timeout_is_a_usage_error(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--on_finish", "true",
                "--hook_timeout", "0")
    assert r.returncode == 2 and "--hook_timeout" in r.stderr
    assert not (tmp_path / "output").exists()


def test_hook_options_are_in_the_help(tmp_path):
    text = run_hog(tmp_path, "--help").stdout
    for option in ("--on_job_end", "--on_finish", "--hook_timeout"):
        assert option in text
