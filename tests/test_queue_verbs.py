"""Verbs from another shell while a runner is active: status, add, stop, kill,
retry and gpus act on the sweep through its store; a live runner notices within
about a second (checked against a generous 3 s bound: these are functional
bounds, not benchmarks). Also --keep_alive: a runner that waits, idle, for more.
"""
import os
import time

import pytest

from tests.harness import (
    children_of,
    counts_of,
    cpu_ticks,
    info,
    job_dir,
    job_dirs,
    job_file,
    job_rows,
    marker,
    read_environ,
    runner_rows,
    running_rows,
    status_counts,
    wait_for,
)

HOLD = "while [ ! -e {go} ]; do sleep 0.02; done"     # a job that runs until told to end
PROMPT_S = 3.0                                        # "within about a second"


def start_runner(hq, jobs, out, gpus="0", *more):
    return hq.start("--job_file", jobs, "--gpus", gpus, "--output_dir", out, *more)


def stop_runner(hq, runner, out, timeout=30) -> int:
    r = hq.run("stop", out)
    assert r.returncode == 0, r.stderr
    return runner.wait(timeout)


def written_at(path) -> float:
    """The $EPOCHREALTIME a job wrote (the last word of the file)."""
    return float(path.read_text().split()[-1])


def env_of(pid: int) -> dict:
    return dict(e.decode().split("=", 1) for e in read_environ(pid) or [] if b"=" in e)


# ----------------------------------------------------------------- status
@pytest.mark.timeout(60)
def test_status_shows_counts_running_jobs_with_slot_gpus_pid_elapsed_and_failed_exit_codes(hq):
    out, go = hq.tmp / "out", hq.tmp / "go"
    jobs = job_file(hq.tmp, "exit 4", HOLD.format(go=go), HOLD.format(go=go),
                                          "true")
    runner = start_runner(hq, jobs, out, "6,7")
    wait_for(lambda: status_counts(out).get("failed") == 1 and len(running_rows(out)) == 2,
             timeout=20, what="one failed job and two running")

    st = hq.status(out)
    assert {k: n for k, n in st["counts"].items() if n} == {"failed": 1, "running": 2, "queued": 1}
    assert [(r["pid"], r["alive"]) for r in st["runners"]] == [(runner.pid, True)]
    running = sorted(st["running"], key=lambda r: r["id"])
    assert [r["id"] for r in running] == [1, 2]
    assert sorted((r["slot"], r["gpus"]) for r in running) == [(0, "6"), (1, "7")]
    for r in running:
        job_env = env_of(r["pid"])        # the pid is the job's own process
        assert job_env.get("HOG_JOB_INDEX") == str(r["id"])
        assert job_env.get("CUDA_VISIBLE_DEVICES") == r["gpus"]
        assert isinstance(r["elapsed_s"], (int, float)) and 0 <= r["elapsed_s"] < 60
        assert r["name"] == f"job_{r['id']}"
    assert [(f["id"], f["status"], f["exit_code"]) for f in st["failed"]] == [(0, "failed", 4)]

    text = hq.run("status", out)
    assert text.returncode == 0
    said = text.stdout
    assert "4 job(s)" in said and "1 queued" in said and "2 running" in said
    assert "1 failed" in said and f"pid {runner.pid}" in said
    assert "running:" in said and "job_1" in said and "job_2" in said
    assert "failed:" in said and "exit 4" in said and "job_0.ERR" in said

    go.touch()
    assert runner.wait(30) == 1                     # job 0 failed


# ----------------------------------------------------------------- add / keep_alive
@pytest.mark.timeout(60)
def test_a_keep_alive_runner_stays_idle_and_starts_added_jobs_within_a_second(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, "true")
    runner = start_runner(hq, jobs, out, "0", "--keep_alive")
    wait_for(lambda: status_counts(out) == {"succeeded": 1}, timeout=20, what="job 0 done")
    time.sleep(0.5)
    assert runner.alive(), "--keep_alive: the runner stays after the queue drained"

    # idle: under 1 % CPU for the runner and its processes over ~3 s
    procs = [runner.pid] + children_of(runner.pid)
    before, t0 = sum(cpu_ticks(p) for p in procs), time.monotonic()
    time.sleep(3)
    used = (sum(cpu_ticks(p) for p in procs) - before) / os.sysconf("SC_CLK_TCK")
    assert used / (time.monotonic() - t0) < 0.01, f"{used:.3f} s of CPU in ~3 s idle"
    assert runner.alive()

    probe = hq.tmp / "added.txt"
    t0 = time.time()
    r = hq.run("add", out, "--", f"echo $HOG_JOB_INDEX $EPOCHREALTIME > {probe}")
    assert r.returncode == 0 and "added 1 job(s)" in r.stdout, r.stdout + r.stderr
    wait_for(probe.exists, timeout=PROMPT_S + 2, what="the added job to run")
    assert probe.read_text().split()[0] == "1"       # the next folder number
    assert written_at(probe) - t0 < PROMPT_S

    more = job_file(hq.tmp, *[f"echo $EPOCHREALTIME > {hq.tmp}/more-$HOG_JOB_INDEX.txt"] * 3,
                    name="more.txt")
    t0 = time.time()
    r = hq.run("add", out, "--job_file", more)
    assert r.returncode == 0 and "added 3 job(s)" in r.stdout, r.stdout + r.stderr
    done = [hq.tmp / f"more-{i}.txt" for i in (2, 3, 4)]
    wait_for(lambda: all(p.exists() for p in done), timeout=PROMPT_S + 2,
             what="the jobs of the added file")
    assert written_at(done[0]) - t0 < PROMPT_S
    # (a job's file is written before its slot records its end)
    wait_for(lambda: status_counts(out) == {"succeeded": 5}, timeout=10,
             what="the added jobs recorded")
    assert runner.alive()
    assert stop_runner(hq, runner, out) == 0
    assert [marker(d) for d in job_dirs(hq.tmp, output="out")] == ["SUCCESS"] * 5


def test_jobs_added_while_no_runner_is_active_wait_for_the_next_one(hq):
    out, ran = hq.tmp / "out", hq.tmp / "ran.txt"
    jobs = job_file(hq.tmp, f"echo sweep >> {ran}")
    assert hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out).returncode == 0

    r = hq.run("add", out, "--", f"echo added >> {ran}")
    assert r.returncode == 0 and "no runner is active" in r.stdout
    more = job_file(hq.tmp, *[f"echo from-file >> {ran}"] * 2, name="more.txt")
    assert hq.run("add", out, "--job_file", more).returncode == 0
    assert status_counts(out) == {"succeeded": 1, "queued": 3}
    said = hq.run("status", out).stdout
    assert "3 queued" in said and "no runner is active" in said
    assert counts_of(ran) == {"sweep": 1}

    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert counts_of(ran) == {"sweep": 1, "added": 1, "from-file": 2}
    assert status_counts(out) == {"succeeded": 4}
    assert [marker(d) for d in job_dirs(hq.tmp, output="out")] == ["SUCCESS"] * 4


@pytest.mark.timeout(60)
def test_add_takes_a_yaml_job_file_with_its_options_and_sweeps(hq):
    out, ran = hq.tmp / "out", hq.tmp / "ran.txt"
    jobs = job_file(hq.tmp, f"echo sweep >> {ran}")
    assert hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out).returncode == 0
    more = hq.tmp / "more.yaml"
    more.write_text("jobs:\n"
                    f"  - {{cmd: 'echo cpu >> {ran}', name: prep, gpus: 0}}\n"
                    "  - sweep:\n"
                    f"      cmd: 'echo lr{{lr}} >> {ran}'\n"
                    "      grid: {lr: [1, 2]}\n"
                    "      after: [prep]\n")
    r = hq.run("add", out, "--job_file", more)
    assert r.returncode == 0 and "added 3 job(s)" in r.stdout, r.stdout + r.stderr
    r = hq.run("--job_file", jobs, "--gpus", "0", "--output_dir", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert counts_of(ran) == {"sweep": 1, "cpu": 1, "lr1": 1, "lr2": 1}
    assert info(job_dir(hq.tmp, 1, output="out"))["gpus"] == [], "the YAML option gpus: 0 was kept"


# ----------------------------------------------------------------- stop
@pytest.mark.timeout(60)
def test_stop_drains_running_jobs_finish_with_success_nothing_new_starts_runner_exits(hq):
    out, go = hq.tmp / "out", hq.tmp / "go"
    jobs = job_file(hq.tmp, *[HOLD.format(go=go)] * 2 + ["true"] * 4)
    runner = start_runner(hq, jobs, out, "0,1")
    wait_for(lambda: len(running_rows(out)) == 2, timeout=20, what="two jobs running")
    r = hq.run("stop", out)
    assert r.returncode == 0 and "asked 1 runner(s)" in r.stdout, r.stdout + r.stderr
    wait_for(lambda: runner_rows(out)[0]["request"] == "drain", what="the drain request")
    time.sleep(1.0)                 # the runner has seen it (ticks every 0.5 s) ...
    assert runner.alive()           # ... and waits for its running jobs
    go.touch()
    rc = runner.wait(30)
    assert "Traceback" not in runner.output
    assert rc != 2, runner.output
    assert [marker(d) for d in job_dirs(hq.tmp, output="out")] == ["SUCCESS", "SUCCESS"]
    assert status_counts(out) == {"succeeded": 2, "queued": 4}


@pytest.mark.timeout(60)
def test_stop_now_terminates_running_jobs_recorded_interrupted(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, *["sleep 60"] * 4)
    runner = start_runner(hq, jobs, out, "0,1")
    wait_for(lambda: len(running_rows(out)) == 2, timeout=20, what="two jobs running")
    r = hq.run("stop", out, "--now")
    assert r.returncode == 0 and "terminate" in r.stdout, r.stdout + r.stderr
    rc = runner.wait(PROMPT_S + 10)
    assert "Traceback" not in runner.output
    hq.wait_no_processes(timeout=5)
    assert [d.name for d in job_dirs(hq.tmp, output="out")] == ["job_0", "job_1"]
    for d in job_dirs(hq.tmp, output="out"):
        assert marker(d) == "FAILURE" and info(d)["status"] == "interrupted"
        assert info(d)["signal"] == "SIGTERM"
    assert status_counts(out) == {"interrupted": 2, "queued": 2}
    assert rc != 0


# ----------------------------------------------------------------- kill
@pytest.mark.timeout(60)
def test_kill_cancels_a_running_job_which_is_not_retried_and_the_runner_exits_0(hq):
    out = hq.tmp / "out"
    jobs = job_file(hq.tmp, "sleep 60  # hog: retries=2", "true")
    runner = start_runner(hq, jobs, out, "0")
    wait_for(lambda: [r["id"] for r in running_rows(out)] == [0], timeout=20,
             what="job 0 running")
    t0 = time.monotonic()
    r = hq.run("kill", out, "job_0")
    assert r.returncode == 0 and "being terminated" in r.stdout, r.stdout + r.stderr
    wait_for(lambda: job_rows(out)[0]["status"] == "cancelled", timeout=PROMPT_S + 5,
             what="job 0 cancelled")
    assert time.monotonic() - t0 < PROMPT_S + 2
    assert runner.wait(30) == 0, runner.output
    rows = job_rows(out)
    assert rows[0]["status"] == "cancelled" and rows[0]["attempt"] == 1   # not retried
    assert info(job_dir(hq.tmp, 0, output="out"))["status"] == "cancelled"
    assert marker(job_dir(hq.tmp, 0, output="out")) == "FAILURE"
    assert not (job_dir(hq.tmp, 0, output="out") / "INFO.1").exists()
    assert rows[1]["status"] == "succeeded"


@pytest.mark.timeout(60)
def test_kill_cancels_a_queued_job_which_never_starts(hq):
    out, go, ran = hq.tmp / "out", hq.tmp / "go", hq.tmp / "ran.txt"
    jobs = job_file(hq.tmp, HOLD.format(go=go), f"echo 1 >> {ran}",
                                          f"echo 2 >> {ran}")
    runner = start_runner(hq, jobs, out, "0")
    wait_for(lambda: [r["id"] for r in running_rows(out)] == [0], timeout=20,
             what="job 0 running")
    r = hq.run("kill", out, "1")
    assert r.returncode == 0 and "cancelled" in r.stdout, r.stdout + r.stderr
    assert job_rows(out)[1]["status"] == "cancelled"
    go.touch()
    assert runner.wait(30) == 0, runner.output
    assert counts_of(ran) == {"2": 1}
    assert not job_dir(hq.tmp, 1, output="out").exists()
    assert status_counts(out) == {"succeeded": 2, "cancelled": 1}
    assert job_rows(out)[1]["attempt"] == 0             # no attempt was ever started


# ----------------------------------------------------------------- retry
@pytest.mark.timeout(60)
def test_retry_queues_one_named_job_or_every_failed_job_again(hq):
    out, fixed = hq.tmp / "out", hq.tmp / "fixed"
    jobs = job_file(hq.tmp, f"test -e {fixed}", f"test -e {fixed}", "true")
    runner = start_runner(hq, jobs, out, "0", "--keep_alive")
    wait_for(lambda: status_counts(out) == {"failed": 2, "succeeded": 1}, timeout=20,
             what="two failed jobs")
    fixed.touch()

    r = hq.run("retry", out, "0")
    assert r.returncode == 0 and "queued 1 job(s) again" in r.stdout, r.stdout + r.stderr
    wait_for(lambda: job_rows(out)[0]["status"] == "succeeded", timeout=PROMPT_S + 2,
             what="job 0 to run again")
    assert job_rows(out)[1]["status"] == "failed"       # only the named one
    assert info(job_dir(hq.tmp, 0, output="out"))["attempt"] == 2
    assert (job_dir(hq.tmp, 0, output="out") / "FAILURE.1").exists()
    assert marker(job_dir(hq.tmp, 0, output="out")) == "SUCCESS"

    r = hq.run("retry", out, "--failed")
    assert r.returncode == 0 and "queued 1 job(s) again" in r.stdout, r.stdout + r.stderr
    wait_for(lambda: job_rows(out)[1]["status"] == "succeeded", timeout=PROMPT_S + 2,
             what="job 1 to run again")

    r = hq.run("retry", out, "2")                        # a succeeded job is left alone
    assert r.returncode == 0 and "left alone" in r.stdout
    assert stop_runner(hq, runner, out) in (0, 1)
    assert status_counts(out) == {"succeeded": 3}
    assert info(job_dir(hq.tmp, 2, output="out"))["attempt"] == 1


# ----------------------------------------------------------------- gpus
@pytest.mark.timeout(60)
def test_gpus_gives_a_live_runner_a_new_slot_whose_id_later_jobs_see_within_a_second(hq):
    out, go = hq.tmp / "out", hq.tmp / "go"
    jobs = job_file(hq.tmp, HOLD.format(go=go))     # keeps slot 0 busy
    runner = start_runner(hq, jobs, out, "0", "--keep_alive")
    wait_for(lambda: len(running_rows(out)) == 1, timeout=20, what="job 0 running")

    t0 = time.time()
    r = hq.run("gpus", out, "0,7")
    assert r.returncode == 0 and "0,7" in r.stdout, r.stdout + r.stderr
    probe = hq.tmp / "probe.txt"
    assert hq.run("add", out, "--", f"echo $CUDA_VISIBLE_DEVICES $EPOCHREALTIME > {probe}") \
        .returncode == 0
    wait_for(probe.exists, timeout=PROMPT_S + 2, what="the added job to run on the new slot")
    gpu, when = probe.read_text().split()
    assert gpu == "7"
    assert float(when) - t0 < PROMPT_S
    assert hq.status(out)["runners"][0]["gpus"] == "0,7"
    go.touch()
    assert stop_runner(hq, runner, out) == 0


@pytest.mark.timeout(60)
def test_gpus_removing_a_slot_lets_its_job_finish_and_gives_it_no_more_jobs(hq):
    out, go, seen = hq.tmp / "out", hq.tmp / "go", hq.tmp / "seen.txt"
    jobs = job_file(hq.tmp, *[HOLD.format(go=go)] * 2)
    runner = start_runner(hq, jobs, out, "0,1", "--keep_alive")
    wait_for(lambda: len(running_rows(out)) == 2, timeout=20, what="both slots busy")
    on_gpu0 = next(r["id"] for r in running_rows(out) if r["gpus"] == "0")

    assert hq.run("gpus", out, "1").returncode == 0
    wait_for(lambda: runner_rows(out)[0]["gpus"] == "1", timeout=PROMPT_S,
             what="the runner to take the new spec")
    more = job_file(hq.tmp, *[f"echo $CUDA_VISIBLE_DEVICES >> {seen}"] * 4, name="more.txt")
    assert hq.run("add", out, "--job_file", more).returncode == 0
    go.touch()
    wait_for(lambda: status_counts(out) == {"succeeded": 6}, timeout=20, what="all jobs done")
    # the removed slot's job finished
    assert marker(job_dir(hq.tmp, on_gpu0, output="out")) == "SUCCESS"
    assert lines_on(seen) == ["1"] * 4                       # and it took no more
    assert all(job_rows(out)[i]["gpus"] == "1" for i in range(2, 6))
    assert stop_runner(hq, runner, out) == 0


def lines_on(path):
    return path.read_text().split()
