"""Quarantine of a GPU whose jobs fail fast (engine/health.py, engine/reruns.py): the
rule stepped with its own clock, the engine stepped with the inline backend, and one
real run with fake GPU ids."""
import json

import pytest

from hog.config import build_config
from hog.engine.health import Health
from hog.errors import UsageError
from hog.model import Status
from hog.state.jobread import earlier_attempts, read_info
from hog.views.status import status_data, status_lines
from tests.harness import (
    info,
    job_dir,
    job_dirs,
    job_file,
    marker,
    run_hog,
    start_hog,
    wait_for,
)
from tests.inline_backend import Clock
from tests.test_engine_loop import Engines, other_store


@pytest.fixture
def engines(tmp_path):
    made = Engines(str(tmp_path / "out"))
    yield made
    for engine in list(made.live):
        made.finish(engine)


# ------------------------------------------------------------------ the rule
def fail_fast(h: Health, job: int, gpu: str, attempt: int = 1):
    h.started(job, [gpu])
    return h.ended(job, attempt, Status.FAILED)


def test_three_distinct_jobs_failing_fast_on_a_gpu_while_another_gpu_works_quarantine_it():
    clock = Clock()
    h = Health(3, 60.0, clock)
    h.started(0, ["0"])
    h.ended(0, 1, Status.SUCCEEDED)                  # GPU 0 works
    assert fail_fast(h, 1, "1") is None
    assert fail_fast(h, 2, "1") is None
    verdict = fail_fast(h, 3, "1")
    assert verdict is not None and verdict.quarantined and verdict.gpu == "1"
    assert sorted(verdict.reruns) == [(1, 1), (2, 1), (3, 1)]
    assert h.excluded() == {"1"}
    assert "GPU 1 quarantined" in verdict.why


def test_a_job_that_fails_fast_on_every_gpu_quarantines_none():
    clock = Clock()
    h = Health(3, 60.0, clock)
    for job in range(12):
        assert fail_fast(h, job, str(job % 2)) is None
    assert h.excluded() == set()


def test_the_same_job_failing_again_and_again_on_one_gpu_counts_once():
    clock = Clock()
    h = Health(3, 60.0, clock)
    h.started(9, ["0"])
    clock.advance(61)                                # GPU 0 has run a job for a while
    for attempt in range(1, 6):
        assert fail_fast(h, 1, "1", attempt) is None
    assert h.excluded() == set()


def test_a_slow_failure_or_a_success_on_the_gpu_ends_its_streak():
    clock = Clock()
    h = Health(3, 60.0, clock)
    h.started(0, ["0"])
    h.ended(0, 1, Status.SUCCEEDED)
    fail_fast(h, 1, "1")
    fail_fast(h, 2, "1")
    h.started(3, ["1"])
    clock.advance(61)
    assert h.ended(3, 1, Status.FAILED) is None      # ran for a while: not fast
    h.started(7, ["0"])
    h.ended(7, 1, Status.SUCCEEDED)                  # GPU 0 still works
    assert fail_fast(h, 4, "1") is None
    assert fail_fast(h, 5, "1") is None
    assert fail_fast(h, 6, "1").quarantined


def test_without_evidence_that_another_gpu_works_there_is_no_quarantine():
    clock = Clock()
    h = Health(3, 60.0, clock)
    h.started(0, ["0"])                              # just started: proves nothing yet
    for job in (1, 2, 3):
        assert fail_fast(h, job, "1") is None
    clock.advance(61)                                # now GPU 0 has run for a while
    assert fail_fast(h, 4, "1").quarantined


def test_a_rerun_that_fails_fast_again_elsewhere_lifts_the_quarantine():
    clock = Clock()
    h = Health(3, 60.0, clock)
    h.started(0, ["0"])
    h.ended(0, 1, Status.SUCCEEDED)
    for job in (1, 2):
        fail_fast(h, job, "1")
    assert fail_fast(h, 3, "1").quarantined
    lifted = fail_fast(h, 1, "0", attempt=2)         # the job's fault after all
    assert lifted is not None and not lifted.quarantined and lifted.gpu == "1"
    assert h.excluded() == set()


def test_zero_turns_quarantine_off():
    for after, within in ((0, 60.0), (3, 0.0)):
        h = Health(after, within, Clock())
        h.started(0, ["0"])
        h.ended(0, 1, Status.SUCCEEDED)
        assert all(fail_fast(h, job, "1") is None for job in range(1, 8))


def test_quarantine_thresholds_are_checked_options():
    with pytest.raises(UsageError):
        build_config(None, gpus="0,1", quarantine_after=-1)
    with pytest.raises(UsageError):
        build_config(None, gpus="0,1", quarantine_within=-5)
    assert build_config(None, gpus="0,1").quarantine_after == 3


# ---------------------------------------------------------------- the engine
def fail_three_on_gpu_1(e):
    """Jobs 0 (GPU 0, still running) and 1, 2, 3 (GPU 1, each failing at once); the
    clock moves past the threshold before job 3 starts, so GPU 0's job has run long."""
    e.settle()
    assert [d.slot for d in e.backend.submitted] == [0, 1]
    e.backend.start_job(0)
    for n in range(3):
        if n == 2:
            e.clock.advance(61)
        e.settle()
        assert e.backend.dispatch_on(1).job.index == n + 1
        e.backend.start_job(1)
        e.settle()
        e.backend.end_job(1, Status.FAILED)
        e.settle()


def test_a_gpu_whose_jobs_fail_fast_is_quarantined_and_they_run_elsewhere_for_free(engines):
    e = engines.make([f"job {i}" for i in range(6)], slots=("0", "1"))
    fail_three_on_gpu_1(e)
    assert any("GPU 1 quarantined" in m for m in e.display.messages)
    assert e.st.progress.quarantine.startswith("GPU 1 quarantined")
    sent = len(e.backend.submitted)
    store = other_store(e)
    try:
        data = status_data(store, e.st.cfg.output_dir)
        assert "1" in data["runners"][0]["quarantined"]
        assert any("GPU 1 quarantined" in line
                   for line in status_lines(data, e.st.cfg.output_dir, "job_"))
    finally:
        store.close()
    assert e.run_all()
    later = e.backend.submitted[sent:]
    assert later and all(d.gpu_ids == ("0",) for d in later)
    assert e.counts() == {"succeeded": 6}
    for job in (1, 2, 3):               # retries 0, yet each ran again
        row = e.row(job)
        assert (row.status, row.attempt) == ("succeeded", 2)
        now = read_info(e.st.layout, job)
        assert now["rerun"] == "rerun: GPU 1 quarantined" and now["gpus"] == ["0"]
        assert earlier_attempts(e.st.layout, job)[0]["gpus"] == ["1"]
    assert e.st.progress.failed == 0
    assert engines.finish(e) == 0


def test_jobs_that_fail_fast_on_every_gpu_quarantine_no_gpu(engines):
    e = engines.make([{"cmd": f"bad {i}", "retries": 1} for i in range(6)], slots=("0", "1"))
    assert e.run_all(Status.FAILED)
    assert not any("quarantined" in m for m in e.display.messages)
    assert e.counts() == {"failed": 6}
    assert all(e.row(j).attempt == 2 for j in range(6))      # their retries, no more
    assert engines.finish(e) == 1


def test_a_hand_release_lets_the_gpu_take_jobs_again(engines):
    e = engines.make([f"job {i}" for i in range(8)], slots=("0", "1"))
    fail_three_on_gpu_1(e)
    assert e.st.health.excluded() == {"1"}
    store = other_store(e)
    try:
        store.request_release(e.st.runner_id, "1")
    finally:
        store.close()
    e.tick()
    e.settle()
    assert any("GPU 1 back in service" in m for m in e.display.messages)
    assert 1 in e.backend.attempts                  # a job was placed on GPU 1 again
    assert e.st.progress.quarantine == ""
    assert e.run_all()


def test_with_quarantine_after_0_a_failing_gpu_keeps_its_jobs(engines):
    e = engines.make([f"job {i}" for i in range(6)], slots=("0", "1"), quarantine_after=0)
    fail_three_on_gpu_1(e)
    assert not any("quarantined" in m for m in e.display.messages)
    assert e.st.store.row(1).status == "failed"


def test_quarantine_after_2_quarantines_after_two_fast_failures(engines):
    e = engines.make([f"job {i}" for i in range(6)], slots=("0", "1"), quarantine_after=2)
    e.settle()
    e.backend.start_job(0)
    e.settle()
    e.clock.advance(61)
    for _ in range(2):
        e.settle()
        e.backend.start_job(1)
        e.settle()
        e.backend.end_job(1, Status.FAILED)
        e.settle()
    assert e.st.health.excluded() == {"1"}


# ------------------------------------------------------------- a real run
def test_a_real_run_stops_using_the_gpu_whose_jobs_fail_fast(tmp_path):
    cmd = 'if [ "$CUDA_VISIBLE_DEVICES" = 1 ]; then sleep 0.2; echo sick >&2; exit 3; fi; ' \
          'sleep 0.1'
    job_file(tmp_path, *[f"{cmd}  # hog: name=j{i}" for i in range(12)])
    r = run_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "0,1", "--display", "plain",
                "--on-job-end", f'echo "$HOG_EVENT $HOG_GPU" >> {tmp_path}/events')
    assert r.returncode == 0, r.stdout + r.stderr
    assert "GPU 1 quarantined" in r.stdout + r.stderr
    assert "gpu_quarantined 1" in (tmp_path / "events").read_text().splitlines()
    folders = job_dirs(tmp_path)
    assert len(folders) == 12 and all(marker(f) == "SUCCESS" for f in folders)
    reruns = [f for f in folders if info(f).get("rerun")]
    assert len(reruns) >= 3
    for f in reruns:
        assert info(f)["gpus"] == ["0"] and info(f)["rerun"] == "rerun: GPU 1 quarantined"
    r = run_hog(tmp_path, "status", "output", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["counts"]["succeeded"] == 12
    assert job_dir(tmp_path, 0).is_dir()


# ---------------------------------------------------------- the scheduler
def scheduler(*gpus: str):
    from hog.backends.scheduler import Capacity, Scheduler
    from hog.model import Slot
    return Scheduler(Capacity([Slot(i, g) for i, g in enumerate(gpus)], cpu_slots=0),
                     clock=Clock())


def test_the_scheduler_places_nothing_on_an_excluded_gpu():
    from hog.model import Job
    s = scheduler("0", "1")
    assert s.set_excluded({"1"})
    placed = s.schedule([Job(index=i, command="x") for i in range(3)])
    assert [p.gpu_ids for p in placed] == [("0",)]
    assert "quarantined" in s.never_fits(Job(index=9, command="x", gpu_ids=("1",)))
    assert s.set_excluded(set())
    assert s.never_fits(Job(index=9, command="x", gpu_ids=("1",))) is None


def test_a_job_still_running_on_the_gpu_when_it_is_quarantined_runs_again_too():
    clock = Clock()
    h = Health(3, 60.0, clock)
    h.started(0, ["0"])
    h.ended(0, 1, Status.SUCCEEDED)
    h.started(7, ["1"])                              # (a second slot on GPU 1)
    for job in (1, 2):
        fail_fast(h, job, "1")
    assert fail_fast(h, 3, "1").new
    late = h.ended(7, 1, Status.FAILED)
    assert late is not None and not late.new and late.reruns == ((7, 1),)


def test_hog_gpus_release_lets_a_live_runners_quarantined_gpu_serve_again(tmp_path):
    sick = tmp_path / "sick"        # GPU 1 fails fast while this file exists
    sick.touch()
    cmd = (f'if [ "$CUDA_VISIBLE_DEVICES" = 1 ] && [ -e {sick} ]; then sleep 0.2; exit 3; fi; '
           f'sleep 0.1')
    job_file(tmp_path, *[cmd for _ in range(12)])
    hog = start_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "0,1", "--display",
                    "plain", "--keep-alive")

    def quarantined():
        r = run_hog(tmp_path, "status", "output", "--json")
        data = json.loads(r.stdout) if r.returncode == 0 else {"runners": []}
        return [g for r in data["runners"] for g in r.get("quarantined", {})]

    assert wait_for(quarantined, 20, what="GPU 1 quarantined") == ["1"]
    shown = run_hog(tmp_path, "status", "output")
    assert "GPU 1 quarantined" in shown.stdout and "--release" in shown.stdout
    wrong = run_hog(tmp_path, "gpus", "output", "--release", "0")
    assert wrong.returncode == 2 and "has not quarantined GPU 0" in wrong.stderr
    sick.unlink()                   # the GPU is well again: jobs left for it succeed
    r = run_hog(tmp_path, "gpus", "output", "--release", "1")
    assert r.returncode == 0 and "will place jobs on GPU 1 again" in r.stdout
    wait_for(lambda: not quarantined(), 10, what="GPU 1 released")
    hog.wait_output("GPU 1 back in service")
    assert run_hog(tmp_path, "stop", "output").returncode == 0
    assert hog.wait(30) == 0


def test_a_streak_that_waited_for_proof_is_quarantined_when_another_gpu_succeeds():
    """GPU 1 fails three jobs fast while GPU 0's first job still runs (no proof yet that
    other GPUs work); the moment that job succeeds, GPU 1 is quarantined and its three
    attempts run again."""
    clock = Clock()
    h = Health(3, 60.0, clock)
    h.started(0, ["0"])
    for job in (1, 2, 3):
        assert fail_fast(h, job, "1") is None
    clock.now += 5
    verdict = h.ended(0, 1, Status.SUCCEEDED)
    assert verdict is not None and verdict.quarantined and verdict.gpu == "1"
    assert sorted(job for job, _ in verdict.reruns) == [1, 2, 3]
    assert h.excluded() == {"1"}
