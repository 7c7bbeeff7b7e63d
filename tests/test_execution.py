"""Running jobs: slot limits, multi-GPU jobs, jobs that can never run, timeouts, and
processes a job leaves behind."""
import time

from .harness import (
    err,
    info,
    job_dir,
    job_dirs,
    job_file,
    marker,
    max_overlap,
    out,
    pid_alive,
    run_hog,
)


def timed(record_dir, body="sleep 0.3"):
    """A job that records 'GPUS SLOT start end' (from $EPOCHREALTIME) in its own file."""
    return (f's=$EPOCHREALTIME; {body}; e=$EPOCHREALTIME; '
            f'echo "${{CUDA_VISIBLE_DEVICES:--}} $HOG_SLOT $s $e" > {record_dir}/t_$HOG_JOB_INDEX')


def spans(record_dir):
    rows = []
    for f in sorted(record_dir.glob("t_*")):
        gpus, slot, s, e = f.read_text().split()
        rows.append((gpus, slot, float(s), float(e)))
    return rows


def test_slot_limits_two_jobs_on_gpu_0_and_one_on_gpu_1(tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    job_file(tmp_path, *[timed(rec)] * 12)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,1")
    assert r.returncode == 0, r.stderr
    rows = spans(rec)
    assert len(rows) == 12
    by_gpu = {}
    by_slot = {}
    for gpus, slot, s, e in rows:
        by_gpu.setdefault(gpus, []).append((s, e))
        by_slot.setdefault(slot, []).append((s, e))
    assert set(by_gpu) == {"0", "1"}
    assert max_overlap(by_gpu["0"]) == 2     # both slots of GPU 0 were used at once ...
    assert max_overlap(by_gpu["1"]) == 1     # ... and GPU 1 never ran two
    assert max_overlap([(s, e) for _, _, s, e in rows]) == 3
    for slot, ss in by_slot.items():
        assert max_overlap(ss) == 1, f"slot {slot} ran two jobs at once"


def test_a_multi_gpu_job_holds_all_its_gpus_while_it_runs(tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    job_file(tmp_path, timed(rec), timed(rec, "sleep 0.5") + "  # hog: gpus=2",
             timed(rec), timed(rec))
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert r.returncode == 0, r.stderr
    rows = {f.name: f.read_text().split() for f in rec.glob("t_*")}
    big = rows.pop("t_1")
    assert sorted(big[0].split(",")) == ["0", "1"]
    b_start, b_end = float(big[2]), float(big[3])
    for name, (gpus, _, s, e) in rows.items():
        s, e = float(s), float(e)
        assert e <= b_start or s >= b_end, f"{name} on GPU {gpus} overlapped the 2-GPU job"


def test_zero_gpu_jobs_still_take_a_slot(tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    job_file(tmp_path, *[timed(rec) + "  # hog: gpus=0"] * 4)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    assert r.returncode == 0, r.stderr
    rows = spans(rec)
    assert len(rows) == 4
    assert max_overlap([(s, e) for *_, s, e in rows]) <= 2


def test_job_needing_more_gpus_than_exist_is_unschedulable_and_others_run(tmp_path):
    job_file(tmp_path, "echo a", "echo big # hog: gpus=3", "echo c")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,1", timeout=30)
    assert r.returncode == 1
    d = job_dir(tmp_path, 1)
    assert marker(d) == "FAILURE"
    assert info(d)["status"] == "unschedulable"
    assert out(d) == ""
    assert "job_1" in r.stderr
    assert "jobs.txt:2" in r.stderr
    assert [marker(job_dir(tmp_path, i)) for i in (0, 2)] == ["SUCCESS", "SUCCESS"]


def test_job_needing_an_unknown_resource_is_unschedulable_naming_job_and_resource(tmp_path):
    job_file(tmp_path, "echo never # hog: name=needs-foo foo=5")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=30)
    assert r.returncode == 1
    d = job_dir(tmp_path, 0)
    assert marker(d) == "FAILURE"
    assert info(d)["status"] == "unschedulable"
    assert info(d)["name"] == "needs-foo"
    assert "needs-foo" in r.stderr and "foo" in r.stderr
    assert "foo" in err(d)


def test_job_with_a_timeout_is_ended_and_marked_timeout(tmp_path):
    job_file(tmp_path, "echo begun; sleep 30; echo never  # hog: timeout=1s", "echo after")
    t0 = time.monotonic()
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 1
    d = job_dir(tmp_path, 0)
    assert marker(d) == "FAILURE"
    data = info(d)
    assert data["status"] == "timeout"
    assert 0.9 <= data["duration_s"] < 8
    assert out(d) == "begun\n"
    assert took < 15
    assert marker(job_dir(tmp_path, 1)) == "SUCCESS"


def test_timeout_kills_the_whole_process_group_of_the_job(tmp_path):
    job_file(tmp_path, "bash -c 'sleep 60 & echo $! > gc.pid; sleep 60; wait' # hog: timeout=0.5s")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--grace", "1", timeout=30)
    assert r.returncode == 1
    assert info(job_dir(tmp_path, 0))["status"] == "timeout"
    assert not pid_alive(int((tmp_path / "gc.pid").read_text()))


def test_a_job_that_finishes_in_time_is_not_affected_by_its_timeout(tmp_path):
    job_file(tmp_path, "sleep 0.1; echo ok  # hog: timeout=20s")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert info(job_dir(tmp_path, 0))["status"] == "succeeded"


def test_processes_a_job_leaves_in_the_background_are_cleaned_up(tmp_path):
    job_file(tmp_path, "sleep 300 & echo $! > bg.pid; echo done; exit 0")
    t0 = time.monotonic()
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=30)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 15
    d = job_dir(tmp_path, 0)
    assert marker(d) == "SUCCESS"
    assert info(d)["exit_code"] == 0
    assert not pid_alive(int((tmp_path / "bg.pid").read_text()))


def test_background_processes_that_ignore_sigterm_are_killed_after_the_grace(tmp_path):
    job_file(tmp_path, "bash -c 'trap \"\" TERM; sleep 300' & echo $! > bg.pid; sleep 0.2; exit 0")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--grace", "0.5", timeout=30)
    assert r.returncode == 0, r.stderr
    assert not pid_alive(int((tmp_path / "bg.pid").read_text()))


def test_a_slot_is_not_blocked_by_a_previous_jobs_background_process(tmp_path):
    job_file(tmp_path, "sleep 300 & exit 0", "echo next")
    t0 = time.monotonic()
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=30)
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 1)) == "next\n"
    assert time.monotonic() - t0 < 15


def test_a_failing_job_does_not_stop_the_others(tmp_path):
    job_file(tmp_path, "exit 1", "echo b", "exit 2", "echo d")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 1
    assert [marker(d) for d in job_dirs(tmp_path)] == ["FAILURE", "SUCCESS", "FAILURE", "SUCCESS"]


def test_a_slot_runs_jobs_one_after_another_without_idling(tmp_path):
    rec = tmp_path / "rec"
    rec.mkdir()
    job_file(tmp_path, *[timed(rec, "sleep 0.1")] * 10)
    t0 = time.time()
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    rows = sorted(spans(rec), key=lambda row: row[2])
    gaps = [b[2] - a[3] for a, b in zip(rows, rows[1:])]
    assert min(gaps) >= 0
    assert sum(gaps) / len(gaps) < 0.25, gaps
    assert rows[0][2] - t0 < 10
