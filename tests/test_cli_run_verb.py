"""``hog run DIR`` runs a queue that has no job source (built with ``hog add``), with
every option of a sweep run; ``--gpus none`` is a CPU-only runner. Real ``python -m
hog`` processes."""
import json
import os
import sqlite3

from hog.config import build_config

from .harness import assert_no_traceback, job_file, marker, out, run_hog, wait_for
from .test_discovery import fake_smi, no_smi


def statuses(tmp_path, directory="q"):
    db = sqlite3.connect(str(tmp_path / directory / ".hog" / "hog.sqlite"))
    try:
        return dict(db.execute("SELECT coalesce(name, id), status FROM jobs"))
    finally:
        db.close()


def test_hog_run_dir_runs_a_queue_built_with_hog_add_with_no_job_file(tmp_path):
    for i in range(3):
        assert run_hog(tmp_path, "add", "q", "--name", f"a{i}", "--", f"echo {i}").returncode == 0
    r = run_hog(tmp_path, "run", "q", "--gpus", "0,0", "--display", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(tmp_path) == {"a0": "succeeded", "a1": "succeeded", "a2": "succeeded"}
    assert sorted(out(tmp_path / "q" / f"job_{i}").strip() for i in range(3)) == ["0", "1", "2"]
    db = sqlite3.connect(str(tmp_path / "q" / ".hog" / "hog.sqlite"))
    assert db.execute("SELECT value FROM meta WHERE key = 'source'").fetchone() is None
    db.close()                          # the queue is bound to no job file


def test_hog_run_takes_the_sweep_options_timeout_retries_and_cpu_slots(tmp_path):
    run_hog(tmp_path, "add", "q", "--name", "slow", "--gpus", "0", "--", "sleep 5")
    run_hog(tmp_path, "add", "q", "--name", "flaky", "--gpus", "0", "--", "exit 3")
    r = run_hog(tmp_path, "run", "q", "--gpus", "none", "--cpu_slots", "2", "--timeout", "0.5s",
                "--retries", "1", "--display", "plain")
    assert r.returncode == 1
    assert statuses(tmp_path) == {"slow": "timeout", "flaky": "failed"}
    db = sqlite3.connect(str(tmp_path / "q" / ".hog" / "hog.sqlite"))
    assert dict(db.execute("SELECT name, attempt FROM jobs")) == {"slow": 2, "flaky": 2}
    db.close()


def test_hog_run_on_a_sweep_runs_what_is_queued_without_reading_its_job_file_again(tmp_path):
    jobs = job_file(tmp_path, "echo one  # hog: name=one")
    assert run_hog(tmp_path, "--job-file", jobs, "--gpus", "0", "-o", "q").returncode == 0
    jobs.write_text("echo one  # hog: name=one\necho two  # hog: name=two\n")
    run_hog(tmp_path, "add", "q", "--name", "added", "--", "echo added")
    r = run_hog(tmp_path, "run", "q", "--gpus", "0", "--display", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    assert statuses(tmp_path) == {"one": "succeeded", "added": "succeeded"}   # no 'two'


def test_the_original_job_file_form_is_unchanged_even_for_a_job_file_named_run(tmp_path):
    job_file(tmp_path, "echo hi", name="run")
    r = run_hog(tmp_path, "--job_file", "run", "--gpus", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert marker(tmp_path / "output" / "job_0") == "SUCCESS"
    r = run_hog(tmp_path, "-j", "run", "-g", "0", "-o", "other", "-q")
    assert r.returncode == 0, r.stdout + r.stderr


def test_hog_run_without_a_queue_is_one_line_naming_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_hog(tmp_path, "run", "empty", "--gpus", "0")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "hog add empty" in r.stderr, r.stderr
    r = run_hog(tmp_path, "run", "--gpus", "0")
    assert r.returncode == 2 and "hog run DIR" in r.stderr, r.stderr
    r = run_hog(tmp_path, "run", "empty", "--job-file", "x")
    assert r.returncode == 2 and "--job-file" in r.stderr, r.stderr
    assert_no_traceback(r.stderr)


def test_gpus_none_runs_cpu_jobs_in_cpu_slots_and_ends_gpu_jobs_needing_gpus(tmp_path):
    jobs = job_file(tmp_path, 'echo "[$CUDA_VISIBLE_DEVICES] $HOG_SLOT"  # hog: gpus=0 name=cpu',
                    "echo gpu  # hog: name=gpu")
    r = run_hog(tmp_path, "--job-file", jobs, "--gpus", "none", "--display", "plain")
    assert r.returncode == 1
    assert out(tmp_path / "output" / "job_0").strip() == "[] cpu0"
    assert marker(tmp_path / "output" / "job_1") == "FAILURE"
    assert "needs 1 GPU(s); this runner has none (--gpus none: CPU-only)" in r.stderr, r.stderr
    status = json.loads(run_hog(tmp_path, "status", "--json").stdout)
    assert status["counts"]["succeeded"] == 1 and status["counts"]["unschedulable"] == 1


def test_gpus_none_has_as_many_cpu_slots_as_cores_unless_cpu_slots_is_given():
    assert build_config(None, gpus="none").slots == ()
    assert build_config(None, gpus="none").cpu_slots == os.cpu_count()
    assert build_config(None, gpus="none", cpu_slots=3).cpu_slots == 3
    assert build_config(None, gpus="0").cpu_slots is None       # as before


def test_without_gpus_where_discovery_finds_none_the_error_says_gpus_none(tmp_path):
    jobs = job_file(tmp_path, "echo hi")
    for env in (no_smi(tmp_path), fake_smi(tmp_path, gpus=[])):
        r = run_hog(tmp_path, "--job-file", jobs, env={**env, "CUDA_VISIBLE_DEVICES": None})
        assert r.returncode == 2
        assert "--gpus none" in r.stderr and "--gpus" in r.stderr.split("--gpus none")[0], r.stderr
        assert r.stderr.count("\n") == 1
        assert not (tmp_path / "output").exists()


def test_hog_run_detach_runs_the_queue_in_the_background(tmp_path):
    run_hog(tmp_path, "add", "q", "--name", "bg", "--", "sleep 0.3; echo bg")
    r = run_hog(tmp_path, "run", "q", "-g", "0", "-d")
    assert r.returncode == 0 and "running in the background" in r.stdout, r.stdout + r.stderr
    wait_for(lambda: statuses(tmp_path) == {"bg": "succeeded"}, 20, what="the job to succeed")
    wait_for(lambda: not json.loads(run_hog(tmp_path, "status", "q", "--json").stdout)["runners"],
             20, what="the runner to end")
    log = (tmp_path / "q" / ".hog" / "runner.log").read_text()
    assert ": run q --gpus 0 --display plain" in log, log
