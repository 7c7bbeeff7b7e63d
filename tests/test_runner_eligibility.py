"""A job no active runner can run stays queued while a runner that could run it is
active, or while a runner is --keep-alive; it ends unschedulable only when the last
runner that might run it finishes. The rule (engine/eligibility.py) is pure; the
engine asks it again only when the set of runners changes."""
import json

from hog.engine import waiting
from hog.engine.eligibility import Peer, could_run, decide, peer, runner_set, wanted
from hog.model import Job
from hog.state.rows import RunnerRow
from hog.state.store import Store
from tests.harness import info, job_dir, job_file, job_rows, marker, run_hog, start_hog, wait_for
from tests.test_engine import engines, step_until  # noqa: F401 (a fixture)
from tests.test_scheduling_e2e import wait_file


def row(id=1, pid=100, gpus="0", keep_alive=0, cpu=1, resources=None) -> RunnerRow:
    cap = "" if cpu is None else json.dumps({"cpu_slots": cpu, "resources": resources or {}})
    return RunnerRow(id, pid, "host", "", gpus, 0.0, 0.0, None, None, None, keep_alive, cap)


def pinned(*ids: str) -> Job:
    return Job(index=0, command="true", gpu_ids=ids, gpus=len(ids))


ME = peer(row(1, gpus="0"))


# ---------------------------------------------------------------- the rule (pure)
def test_a_runner_with_the_pinned_gpu_could_run_the_job_and_one_without_could_not():
    assert could_run(peer(row(gpus="0,1")), pinned("1"))
    assert not could_run(peer(row(gpus="0,2")), pinned("1"))


def test_gpu_count_cpu_slots_and_resources_are_what_a_runner_recorded():
    assert not could_run(peer(row(gpus="0")), Job(index=0, command="x", gpus=2))
    assert could_run(peer(row(gpus="0,1")), Job(index=0, command="x", gpus=2))
    assert not could_run(peer(row(cpu=0)), Job(index=0, command="x", gpus=0))
    lic = Job(index=0, command="x", resources=(("license", 2.0),))
    assert not could_run(peer(row(resources={"license": 1})), lic)
    assert could_run(peer(row(resources={"license": 2})), lic)


def test_gpu_memory_is_left_to_the_runner_that_tries():
    job = Job(index=0, command="x", resources=(("memory", 80e9),))
    assert could_run(peer(row(gpus="0")), job)


def test_a_runner_whose_capacity_is_unknown_might_run_anything():
    assert peer(row(cpu=None)).cpu_slots is None
    assert could_run(peer(row(cpu=None)), pinned("7"))


def test_it_waits_for_another_active_runner_that_could_run_it():
    assert decide(pinned("1"), ME, [peer(row(2, pid=42, gpus="1,1"))]) == \
        "waits for runner 2 (pid 42, GPUs 1)"


def test_it_waits_for_a_runner_with_what_it_needs_while_a_runner_is_keep_alive():
    keeping = Peer(1, 1, ("0",), True, 1)
    assert decide(pinned("3"), keeping, []) == "waits for a runner with GPU 3 (--keep-alive)"
    assert decide(pinned("3"), ME, [peer(row(2, gpus="2", keep_alive=1))]) == \
        "waits for a runner with GPU 3 (runner 2 is --keep-alive)"


def test_with_other_runners_none_of_which_could_run_it_the_last_of_them_ends_it():
    others = [peer(row(2, gpus="2"))]
    assert decide(pinned("3"), ME, others) == \
        "waits for a runner with GPU 3 while other runners are active"
    assert decide(pinned("3"), ME, others, finishing=True) is None


def test_the_last_active_runner_ends_it_unschedulable_as_before():
    assert decide(pinned("3"), ME, []) is None


def test_a_finishing_runner_no_longer_holds_a_job_by_its_own_keep_alive():
    keeping = Peer(1, 1, ("0",), True, 1)
    assert decide(pinned("3"), keeping, [], finishing=True) is None


def test_what_a_job_waits_for_is_said_in_words():
    assert wanted(pinned("3")) == "a runner with GPU 3"
    assert wanted(pinned("2", "3")) == "a runner with GPUs 2,3"
    assert wanted(Job(index=0, command="x", gpus=4)) == "a runner with 4 GPUs"
    assert wanted(Job(index=0, command="x", gpus=0)) == "a runner with CPU slots"
    assert wanted(Job(index=0, command="x", resources=(("license", 2.0),))) == \
        "a runner with license=2"


def test_the_runner_set_changes_when_a_runner_joins_ends_or_changes_gpus_not_on_a_heartbeat():
    a, b = row(1, gpus="0"), row(2, gpus="1")
    assert runner_set([a]) != runner_set([a, b])
    assert runner_set([a, b]) != runner_set([a, row(2, gpus="1,2")])
    beat = b._replace(heartbeat=123.0)
    assert runner_set([a, b]) == runner_set([a, beat])


# ---------------------------------------------------------------- stepped engine
def test_a_keep_alive_runner_decides_a_waiting_job_again_only_when_the_runners_change(
        engines, monkeypatch):  # noqa: F811
    calls = []
    real = waiting.decide
    monkeypatch.setattr(waiting, "decide", lambda *a, **k: calls.append(1) or real(*a, **k))
    runner, clock = engines.make([{"cmd": "true", "gpu_ids": ["1"]}], slots=("0",),
                                 keep_alive=True)
    step_until(runner, clock, lambda: runner.st.left)
    assert calls == [1]
    other = Store(runner.st.layout.state_dir)
    try:
        for i in range(10):                    # the store changes, the runners do not
            other.set_meta("poke", str(i))
            clock.advance(1.0)
            assert not runner.step(clock())
        assert calls == [1]
        assert other.waiting_jobs() == [(0, None, "waits for a runner with GPU 1 "
                                                  "(--keep-alive)")]
        with other.transaction():               # a runner with GPU 1 joins
            other.register_runner("1", capacity=json.dumps({"cpu_slots": 1}))
        clock.advance(1.0)
        step_until(runner, clock, lambda: len(calls) == 2)
        assert other.waiting_jobs()[0][2].startswith("waits for runner 2 (pid ")
    finally:
        other.close()


# ---------------------------------------------------------------- real processes
def test_a_job_for_a_gpu_this_runner_lacks_waits_for_an_active_runner_with_it_and_runs_there(
        tmp_path):
    go, b_busy = tmp_path / "go", tmp_path / "b_busy"
    job_file(tmp_path, f"touch {b_busy}; {wait_file(go)}",
             "echo on $CUDA_VISIBLE_DEVICES  # hog: gpu_ids=1")
    b = start_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "1")
    wait_for(b_busy.exists, 15, what="runner B's first job")
    a = run_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "0", timeout=30)
    assert a.returncode == 0, a.stderr
    assert f"must run on GPU 1; this runner has no GPU 1; it waits for runner 1 (pid {b.pid}, " \
           f"GPUs 1)" in a.stderr
    assert job_rows(tmp_path / "output")[1]["status"] == "queued"
    go.touch()
    assert b.wait(30) == 0, b.output
    assert marker(job_dir(tmp_path, 1)) == "SUCCESS"
    assert info(job_dir(tmp_path, 1))["gpus"] == ["1"]


def test_a_lone_runner_without_keep_alive_ends_the_job_unschedulable_as_before(tmp_path):
    job_file(tmp_path, "echo x  # hog: gpu_ids=1")
    r = run_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "0", timeout=30)
    assert r.returncode == 1
    assert "must run on GPU 1; this runner has no GPU 1; it will not run" in r.stderr
    assert marker(job_dir(tmp_path, 0)) == "FAILURE"


def test_with_keep_alive_the_job_stays_queued_status_says_why_and_a_joining_runner_runs_it(
        tmp_path):
    job_file(tmp_path, "echo on $CUDA_VISIBLE_DEVICES  # hog: gpu_ids=1")
    a = start_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "0", "--keep-alive")
    a.wait_output("waits for a runner with GPU 1", 15)
    st = run_hog(tmp_path, "status", "output")
    assert "job_0            waits for a runner with GPU 1 (--keep-alive)" in st.stdout, \
        st.stdout
    data = json.loads(run_hog(tmp_path, "status", "output", "--json").stdout)
    assert data["waiting"] == [dict(id=0, name="job_0",
                                    waits_for="waits for a runner with GPU 1 (--keep-alive)")]
    assert data["counts"]["queued"] == 1
    b = run_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "1", timeout=30)
    assert b.returncode == 0, b.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    assert info(job_dir(tmp_path, 0))["gpus"] == ["1"]
    assert "waiting for another runner" not in run_hog(tmp_path, "status", "output").stdout
    assert a.alive()
    stopped = run_hog(tmp_path, "stop", "output")
    assert stopped.returncode == 0, stopped.stderr
    assert a.wait(30) == 0, a.output


def test_of_several_runners_none_of_which_could_run_it_the_last_to_finish_ends_it(tmp_path):
    go, b_busy = tmp_path / "go", tmp_path / "b_busy"
    job_file(tmp_path, f"touch {b_busy}; {wait_file(go)}", "echo x  # hog: gpu_ids=3")
    b = start_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "2")
    wait_for(b_busy.exists, 15, what="runner B's first job")
    a = start_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "0")
    a.wait_output("it waits for a runner with GPU 3 while other runners are active", 15)
    assert a.wait(30) == 1, a.output        # finishing, it was the last that might
    assert "must run on GPU 3; this runner has no GPU 3; it will not run" in a.output
    assert job_rows(tmp_path / "output")[1]["status"] == "unschedulable"
    go.touch()
    assert b.wait(30) == 0, b.output
    assert marker(job_dir(tmp_path, 1)) == "FAILURE"


def test_a_keep_alive_runner_given_the_gpu_with_hog_gpus_runs_the_job_it_waited_with(tmp_path):
    job_file(tmp_path, "echo on $CUDA_VISIBLE_DEVICES  # hog: gpu_ids=1")
    a = start_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "0", "--keep-alive")
    a.wait_output("waits for a runner with GPU 1", 15)
    assert run_hog(tmp_path, "gpus", "output", "0,1").returncode == 0
    wait_for(lambda: job_rows(tmp_path / "output")[0]["status"] == "succeeded", 15,
             what="the job to run on the new slot")
    assert info(job_dir(tmp_path, 0))["gpus"] == ["1"]
    assert run_hog(tmp_path, "stop", "output").returncode == 0
    assert a.wait(30) == 0, a.output
