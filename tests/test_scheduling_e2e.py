"""Resource-aware scheduling, end to end: real hog processes on fake GPU ids.

Jobs record what they saw ($CUDA_VISIBLE_DEVICES, $HOG_SLOT) and when they ran
(bash's $EPOCHREALTIME) in files; the tests read those back. Waiting is done on
files and conditions with deadlines, not on fixed sleeps.
"""
import os
import subprocess
import sys
import time

import pytest
import yaml

from hog.sources.joboptions import parse_duration

from .harness import CHECKOUT as ROOT
from .harness import (
    err,
    hog_env,
    info,
    job_dir,
    job_file,
    job_pids,
    marker,
    max_overlap,
    out,
    pid_alive,
    run_hog,
    start_hog,
    wait_for,
)


def timed(rec, body="sleep 0.4", tag="$HOG_JOB_INDEX"):
    """A job that records 'GPUS SLOT start end' in rec/t_<tag>."""
    return (f's=$EPOCHREALTIME; {body}; e=$EPOCHREALTIME; '
            f'echo "${{CUDA_VISIBLE_DEVICES:--}} $HOG_SLOT $s $e" > {rec}/t_{tag}')


def spans(rec):
    """{file suffix: (gpus, slot, start, end)} of what ``timed`` jobs recorded."""
    rows = {}
    for f in rec.glob("t_*"):
        gpus, slot, s, e = f.read_text().split()
        rows[f.name[2:]] = (gpus, slot, float(s), float(e))
    return rows


def wait_file(path, limit=20):
    """Bash: wait (at most ``limit`` s) until ``path`` exists; fail if it never does."""
    return (f'for _ in $(seq {limit * 20}); do [ -e {path} ] && break; sleep 0.05; done; '
            f'[ -e {path} ]')


def poll(condition, timeout):
    """Poll ``condition`` for up to ``timeout`` s; its last value (no failure)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@pytest.fixture
def rec(tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    return d


# ------------------------------------------------------------------ set-up
def test_spawned_hog_imports_this_worktrees_code(tmp_path):
    code = "import hog, os; print(os.path.realpath(hog.__file__))"
    r = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=hog_env(),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(str(ROOT.resolve()) + os.sep), r.stdout


# ------------------------------------------------------------ GPU and CPU
def test_a_two_gpu_job_sees_two_distinct_gpu_ids(tmp_path):
    job_file(tmp_path, 'echo "$CUDA_VISIBLE_DEVICES"  # hog: gpus=2')
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,1,1")
    assert r.returncode == 0, r.stderr
    seen = out(job_dir(tmp_path, 0)).strip().split(",")
    assert sorted(seen) == ["0", "1"]
    assert sorted(info(job_dir(tmp_path, 0))["gpus"]) == ["0", "1"]


def test_a_cpu_job_sees_no_gpu_and_runs_in_a_cpu_slot(tmp_path):
    job_file(tmp_path, 'echo "[${CUDA_VISIBLE_DEVICES-unset}] $HOG_SLOT"  # hog: gpus=0')
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--cpu_slots", "1")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)).strip() == "[] cpu0"
    assert info(job_dir(tmp_path, 0))["gpus"] == []


def test_the_first_cpu_job_gets_slot_cpu0_with_the_default_cpu_slots(tmp_path):
    job_file(tmp_path, 'echo "[${CUDA_VISIBLE_DEVICES-unset}] $HOG_SLOT"  # hog: gpus=0')
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)).strip() == "[] cpu0"


def test_a_cpu_job_runs_while_every_gpu_slot_is_busy(tmp_path):
    """The GPU job only ends once the CPU job has run; with one GPU slot, that proves
    the CPU job did not wait for a GPU slot."""
    job_file(tmp_path,
             f'{wait_file(tmp_path / "cpu_ran")}; echo "$CUDA_VISIBLE_DEVICES"',
             f'echo "[$CUDA_VISIBLE_DEVICES] $HOG_SLOT"; touch {tmp_path / "cpu_ran"}'
             '  # hog: gpus=0')
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr + r.stdout
    assert out(job_dir(tmp_path, 0)).strip() == "0"
    assert out(job_dir(tmp_path, 1)).strip() == "[] cpu0"


def test_cpu_slots_0_makes_a_cpu_job_unschedulable(tmp_path):
    job_file(tmp_path, "echo gpu", "echo cpu  # hog: gpus=0 name=cpu_only")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--cpu_slots", "0")
    assert r.returncode == 1
    assert "cpu_only" in r.stderr
    assert "cpu_slots" in r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    d = job_dir(tmp_path, 1)
    assert marker(d) == "FAILURE"
    assert info(d)["status"] == "unschedulable"
    assert out(d) == ""


# --------------------------------------------------------- named resources
def test_a_resource_of_1_serializes_its_jobs_while_other_jobs_run_alongside(tmp_path, rec):
    job_file(tmp_path,
             timed(rec, "sleep 0.5", "lic_$HOG_JOB_INDEX") + "  # hog: lic=1",
             timed(rec, "sleep 0.5", "lic_$HOG_JOB_INDEX") + "  # hog: lic=1",
             timed(rec, "sleep 0.5", "free_$HOG_JOB_INDEX"),
             timed(rec, "sleep 0.5", "free_$HOG_JOB_INDEX"))
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1,2", "--resources", "lic=1")
    assert r.returncode == 0, r.stderr
    rows = spans(rec)
    lic = [(s, e) for k, (_, _, s, e) in rows.items() if k.startswith("lic")]
    free = [(s, e) for k, (_, _, s, e) in rows.items() if k.startswith("free")]
    assert len(lic) == 2 and len(free) == 2
    assert max_overlap(lic) == 1, f"the two lic=1 jobs overlapped: {lic}"
    # the unrelated jobs did not wait for the licence: they ran beside a licence job
    assert max_overlap(lic[:1] + free) >= 2 or max_overlap(lic[1:] + free) >= 2
    assert max_overlap(lic + free) == 3


def test_a_job_needing_a_resource_the_runner_lacks_is_unschedulable(tmp_path):
    job_file(tmp_path, "echo ok", "echo never  # hog: foo=5")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 1
    assert "needs foo=5; this runner has no foo" in r.stderr
    assert "job_1" in r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    d = job_dir(tmp_path, 1)
    assert marker(d) == "FAILURE"
    assert info(d)["status"] == "unschedulable"
    assert "needs foo=5; this runner has no foo" in err(d)
    assert out(d) == ""


def test_a_job_needing_more_of_a_resource_than_the_runner_has_is_unschedulable(tmp_path):
    job_file(tmp_path, "echo never  # hog: foo=5")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--resources", "foo=4")
    assert r.returncode == 1
    assert "needs foo=5; this runner has 4" in r.stderr
    assert info(job_dir(tmp_path, 0))["status"] == "unschedulable"


def test_bad_resources_flag_is_a_usage_error(tmp_path):
    job_file(tmp_path, "echo a")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--resources", "lic")
    assert r.returncode == 2
    assert "--resources" in r.stderr and "'lic'" in r.stderr
    assert not (tmp_path / "output" / "job_0").exists()


def test_memory_jobs_on_a_40g_gpu_run_at_most_two_of_20g_at_once(tmp_path, rec):
    job_file(tmp_path, *[timed(rec, "sleep 0.4") + "  # hog: memory=20G"] * 5)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,0", "--gpu_memory", "40G")
    assert r.returncode == 0, r.stderr
    rows = spans(rec)
    assert len(rows) == 5
    assert max_overlap([(s, e) for *_, s, e in rows.values()]) == 2


def test_a_memory_job_larger_than_the_gpu_is_unschedulable(tmp_path):
    job_file(tmp_path, "echo big  # hog: memory=50G")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--gpu_memory", "40G")
    assert r.returncode == 1
    assert "memory=50G" in r.stderr and "40G" in r.stderr


# ------------------------------------------------------------ affinity
def test_a_job_pinned_with_gpu_ids_runs_only_on_that_gpu(tmp_path, rec):
    job_file(tmp_path, *[timed(rec, "sleep 0.1", "pin_$HOG_JOB_INDEX") + "  # hog: gpu_ids=1"] * 3,
             *[timed(rec, "sleep 0.1", "any_$HOG_JOB_INDEX")] * 3)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert r.returncode == 0, r.stderr
    rows = spans(rec)
    pinned = {k: v[0] for k, v in rows.items() if k.startswith("pin")}
    assert len(pinned) == 3
    assert set(pinned.values()) == {"1"}
    for i in range(3):
        assert info(job_dir(tmp_path, i))["gpus"] == ["1"]


def test_a_job_pinned_to_a_gpu_the_runner_lacks_is_unschedulable(tmp_path):
    job_file(tmp_path, "echo x  # hog: gpu_ids=3")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert r.returncode == 1
    assert "must run on GPU 3; this runner has no GPU 3" in r.stderr


# ------------------------------------------------------------ priority
def test_a_later_high_priority_job_runs_before_earlier_queued_ones(tmp_path):
    order = tmp_path / "order"
    started = tmp_path / "started"
    (tmp_path / "sweep.py").write_text(f"""import os, time

def yielder():
    yield "touch {started}; echo 0 >> {order}; sleep 0.8"
    while not os.path.exists("{started}"):    # the rest queue up while job 0 runs
        time.sleep(0.02)
    yield "echo 1 >> {order}"
    yield "echo 2 >> {order}"
    yield {{"cmd": "echo 3 >> {order}", "priority": 5}}
    yield {{"cmd": "echo 4 >> {order}", "priority": -1}}
    yield "echo 5 >> {order}"
""")
    r = run_hog(tmp_path, "--job_yielder", "sweep.py", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert order.read_text().split() == ["0", "3", "1", "2", "5", "4"]


# ------------------------------------------------------------- timeouts
@pytest.mark.parametrize("text, seconds", [
    ("90", 90.0), ("90s", 90.0), ("1.5s", 1.5), ("500ms", 0.5), ("30m", 1800.0),
    ("4h", 14400.0), ("1.5d", 129600.0), (" 2 s ", 2.0), (45, 45.0)])
def test_timeouts_are_read_as_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5s", "0", "5x", True])
def test_bad_durations_are_rejected(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_a_bad_timeout_in_a_job_file_is_an_input_error_naming_the_line(tmp_path):
    job_file(tmp_path, "echo a  # hog: timeout=soon")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 2
    assert "jobs.txt:1" in r.stderr and "timeout" in r.stderr


def test_a_job_over_its_timeout_is_ended_with_its_whole_process_group(tmp_path, tag):
    child = tmp_path / "child_pid"
    job_file(tmp_path, f"sleep 30 & echo $! > {child}; sleep 30  # hog: timeout=1s")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=30)
    assert r.returncode == 1
    d = job_dir(tmp_path, 0)
    assert marker(d) == "FAILURE"
    data = info(d)
    assert data["status"] == "timeout"
    assert 0.9 <= data["duration_s"] < 10
    assert not pid_alive(data["pid"])
    assert not pid_alive(int(child.read_text()))
    assert job_pids(tag) == []
    assert "job_0" in r.stderr


def test_a_job_within_its_timeout_succeeds(tmp_path):
    job_file(tmp_path, "sleep 0.1  # hog: timeout=90s")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"


# -------------------------------------------------------------- retries
def counting_job(counter, succeed_at):
    """Fails until its attempt counter (kept in a file) reaches ``succeed_at``."""
    return (f'n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; '
            f'echo "attempt $HOG_ATTEMPT run $n"; echo "err $n" >&2; [ $n -ge {succeed_at} ]')


def test_a_job_that_fails_twice_then_succeeds_with_retries_2_ends_success(tmp_path):
    job_file(tmp_path, counting_job(tmp_path / "count", 3) + "  # hog: retries=2")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=30)
    assert r.returncode == 0, r.stderr
    d = job_dir(tmp_path, 0)
    assert marker(d) == "SUCCESS"
    assert info(d)["attempt"] == 3
    assert info(d)["status"] == "succeeded"
    assert out(d).strip() == "attempt 3 run 3"
    # the earlier attempts' files are kept under numbered names
    for n in (1, 2):
        assert (d / f"job_0.{n}.OUT").read_text().strip() == f"attempt {n} run {n}"
        assert (d / f"job_0.{n}.ERR").read_text().strip() == f"err {n}"
        assert (d / f"FAILURE.{n}").exists()
        with open(d / f"INFO.{n}") as f:
            earlier = yaml.safe_load(f)
        assert earlier["attempt"] == n and earlier["status"] == "failed"
    assert not (d / "FAILURE").exists()
    assert not (d / "job_0.3.OUT").exists()


def test_a_job_that_always_fails_with_retries_1_ends_failure_after_2_attempts(tmp_path):
    job_file(tmp_path, counting_job(tmp_path / "count", 99) + "  # hog: retries=1")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=30)
    assert r.returncode == 1
    d = job_dir(tmp_path, 0)
    assert marker(d) == "FAILURE"
    assert info(d)["attempt"] == 2
    assert info(d)["status"] == "failed"
    assert (tmp_path / "count").read_text().strip() == "2"
    assert (d / "job_0.1.OUT").exists() and (d / "FAILURE.1").exists()
    assert not (d / "job_0.2.OUT").exists()


def test_a_cancelled_job_is_not_retried(tmp_path):
    started = tmp_path / "started"
    job_file(tmp_path, f"echo run >> {started}; sleep 30  # hog: retries=3")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--grace", "1")
    wait_for(started.exists, 15, what="the job to start")
    k = run_hog(tmp_path, "kill", "output", "0", timeout=30)
    assert k.returncode == 0, k.stderr
    hog.wait(30)
    d = job_dir(tmp_path, 0)
    assert info(d)["status"] == "cancelled"
    assert info(d)["attempt"] == 1
    assert marker(d) == "FAILURE"
    assert started.read_text().split() == ["run"]
    assert not (d / "job_0.1.OUT").exists()


# ---------------------------------------------------------- dependencies
def test_a_job_after_another_waits_for_its_success(tmp_path):
    flag = tmp_path / "prepped"
    job_file(tmp_path,
             f"sleep 0.5; touch {flag}  # hog: name=prep",
             f"test -e {flag}  # hog: after=prep name=train",
             "echo unrelated")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert r.returncode == 0, r.stderr
    prep, train = info(job_dir(tmp_path, 0)), info(job_dir(tmp_path, 1))
    assert marker(job_dir(tmp_path, 1)) == "SUCCESS"
    assert train["started"] >= prep["ended"]


def test_a_failed_dependency_skips_its_dependents_and_nothing_waits_forever(tmp_path):
    job_file(tmp_path,
             "exit 3  # hog: name=prep",
             "echo train  # hog: name=train after=prep",
             "echo eval  # hog: after=train",
             "echo other")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=30)
    assert r.returncode == 1
    train, evaluate = job_dir(tmp_path, 1), job_dir(tmp_path, 2)
    assert info(train)["status"] == "skipped"
    assert marker(train) == "FAILURE"
    assert out(train) == ""
    assert "its dependency prep ended failed" in err(train)
    assert info(evaluate)["status"] == "skipped"
    assert "its dependency train ended skipped" in err(evaluate)
    assert marker(job_dir(tmp_path, 3)) == "SUCCESS"
    assert "train" in r.stderr and "prep" in r.stderr
    assert "skipped" in r.stderr


def test_after_naming_no_earlier_job_is_an_input_error_naming_file_and_line(tmp_path):
    job_file(tmp_path, "echo a  # hog: after=later", "echo b  # hog: name=later")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 2
    assert "jobs.txt:1" in r.stderr and "'later'" in r.stderr
    assert not job_dir(tmp_path, 0).exists()
    assert not job_dir(tmp_path, 1).exists()


def test_after_naming_no_job_at_all_is_an_input_error(tmp_path):
    job_file(tmp_path, "echo a  # hog: after=x")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 2
    assert "jobs.txt:1" in r.stderr and "'x'" in r.stderr


# ---------------------------------------------------- --wait_for_running
def _other_runner_blocks(tmp_path, first_flags):
    """Runner A (out_a) runs a job until told to end it; runner B (out_b, with
    --wait_for_running) must start none of its jobs before A's job has ended. One of
    B's jobs is queued (hog add) before B starts, so it is ready at B's very first
    scheduling pass; the other comes from B's job file."""
    run_dir = tmp_path / "xdg"
    run_dir.mkdir(mode=0o700)
    env = {"XDG_RUNTIME_DIR": str(run_dir)}
    a_started, a_go = tmp_path / "a_started", tmp_path / "a_go"
    b_marks = [tmp_path / "b_queued_started", tmp_path / "b_file_started"]
    job_file(tmp_path, f"touch {a_started}; {wait_file(a_go)}; echo $EPOCHREALTIME",
             name="a.txt")
    job_file(tmp_path, f"echo $EPOCHREALTIME > {b_marks[1]}", name="b.txt")
    added = run_hog(tmp_path, "add", "out_b", "--", f"echo $EPOCHREALTIME > {b_marks[0]}")
    assert added.returncode == 0, added.stderr
    a = start_hog(tmp_path, "--job_file", "a.txt", "--gpus", "0", "--output_dir", "out_a",
                  *first_flags, env=env)
    wait_for(a_started.exists, 15, what="the first runner's job to start")
    b = start_hog(tmp_path, "--job_file", "b.txt", "--gpus", "1", "--output_dir", "out_b",
                  "--wait_for_running", env=env)
    # give the second runner a few of its 0.5 s ticks to (wrongly) start a job; it
    # says that it waits, which ends this early
    poll(lambda: "waiting" in b.output or any(m.exists() for m in b_marks) or not b.alive(),
         2.0)
    started = [m.name for m in b_marks if m.exists()]
    assert not started, f"the second runner started {started} while the first ran a job\n" \
                        f"{b.output}"
    assert b.alive(), b.output
    a_go.touch()
    assert a.wait(30) == 0, a.output
    assert b.wait(30) == 0, b.output
    a_end = float(out(job_dir(tmp_path, 0, "out_a")).strip())
    for m in b_marks:
        assert float(m.read_text()) >= a_end, \
            f"{m.name}: the second runner's job started before the first runner's job ended\n" \
            f"{b.output}"


def test_wait_for_running_starts_nothing_while_another_waiting_runner_runs_a_job(tmp_path):
    _other_runner_blocks(tmp_path, ["--wait_for_running"])


def test_wait_for_running_starts_nothing_while_another_plain_runner_runs_a_job(tmp_path):
    """The first runner was started without the flag: it is still another hog runner
    of the same user running a job."""
    _other_runner_blocks(tmp_path, [])


def test_wait_for_running_starts_at_once_when_no_other_runner_is_busy(tmp_path):
    run_dir = tmp_path / "xdg"
    run_dir.mkdir(mode=0o700)
    job_file(tmp_path, "echo hi")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--wait_for_running",
                env={"XDG_RUNTIME_DIR": str(run_dir)}, timeout=30)
    assert r.returncode == 0, r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
