"""hog --backend ray: the same sweeps, folders and verbs, with Ray placing the jobs.

Every test runs hog against one shared Ray cluster (a head with 4 fake GPUs on
127.0.0.1, in a network namespace of its own: see tests/ray_support.py). Jobs run
in Ray workers, so they do not inherit the test's tag; instead every process a
job leaves behind is found by its ``HOG_JOB_DIR`` (under the test's tmp_path).
"""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .harness import (
    children_of,
    err,
    info,
    job_dir,
    job_file,
    marker,
    out,
    query,
    run_hog,
    track,
    wait_for,
    write,
)
from .ray_support import pids_with, why_no_ray

pytestmark = pytest.mark.timeout(300)


class RayHog:
    """Runs hog with --backend ray against the shared cluster, inside its namespace."""

    def __init__(self, cluster, cwd: Path):
        self.cluster = cluster
        self.cwd = cwd

    def argv(self, *args):
        return self.cluster.hog_argv("--backend", "ray", "--ray_address", self.cluster.address,
                                     "--display", "plain", *args)

    def run(self, *args, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), cwd=str(self.cwd), env=self.cluster.hog_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def start(self, *args) -> subprocess.Popen:
        n = len(list(self.cwd.glob("hog-*.log")))
        log = open(self.cwd / f"hog-{n}.log", "wb")
        proc = subprocess.Popen(self.argv(*args), cwd=str(self.cwd), env=self.cluster.hog_env(),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
        log.close()
        proc.log = self.cwd / f"hog-{n}.log"
        return track(proc)


@pytest.fixture
def ray_hog(ray_cluster, tmp_path):
    """hog on Ray in tmp_path; afterwards no process a job started may be alive."""
    yield RayHog(ray_cluster, tmp_path)
    needle = f"HOG_JOB_DIR={tmp_path}".encode()
    deadline = time.monotonic() + 10
    left = pids_with(needle)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = pids_with(needle)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"job processes left running on the Ray node: {left}"


def job_pids_alive(tmp_path: Path):
    return pids_with(f"HOG_JOB_DIR={tmp_path}".encode())


def status_json(tmp_path: Path) -> dict:
    r = run_hog(tmp_path, "status", "output", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# ----------------------------------------------------------------- running
def test_each_job_runs_as_a_ray_task_on_the_gpus_ray_assigned(ray_hog, tmp_path):
    show = 'echo "cvd=[$CUDA_VISIBLE_DEVICES] i=$HOG_JOB_INDEX a=$HOG_ATTEMPT n=$HOG_JOB_NAME ' \
           'd=$HOG_JOB_DIR pwd=$(pwd) order=$CUDA_DEVICE_ORDER"'
    jobs = job_file(tmp_path,
                    f"{show}   # hog: name=one",
                    f"{show}   # hog: name=two gpus=2",
                    f"{show}   # hog: name=half gpus=0.5",
                    f"{show}   # hog: name=cpu gpus=0",
                    "echo failing >&2; exit 3   # hog: name=bad",
                    'echo "attempt $HOG_ATTEMPT"; exit 1   # hog: name=again retries=1',
                    "sleep 30   # hog: name=slow timeout=1s",
                    "true   # hog: name=huge gpus=5",
                    "true   # hog: name=pinned gpu_ids=1",
                    "true   # hog: name=licensed license=1")
    r = ray_hog.run("--job_file", jobs)
    assert r.returncode == 1, r.stdout + r.stderr
    by_name = {}
    for i in range(10):
        folder = job_dir(tmp_path, i)
        by_name[info(folder)["name"]] = folder
    for name, n_gpus in (("one", 1), ("two", 2), ("half", 1), ("cpu", 0)):
        folder = by_name[name]
        data = info(folder)
        assert marker(folder) == "SUCCESS"
        assert len(data["gpus"]) == n_gpus and set(data["gpus"]) <= {"0", "1", "2", "3"}
        assert data["host"] == socket.gethostname() and data["node"]
        assert data["status"] == "succeeded" and data["exit_code"] == 0
        assert out(folder) == (f"cvd=[{','.join(data['gpus'])}] i={data['index']} a=1 n={name} "
                               f"d={folder} pwd={tmp_path} order=PCI_BUS_ID\n")
        assert data["max_rss_bytes"] > 0 and data["cpu_user_s"] is not None   # measured
    bad = info(by_name["bad"])
    assert (bad["status"], bad["exit_code"]) == ("failed", 3)
    assert err(by_name["bad"]) == "failing\n"
    again = by_name["again"]
    assert info(again)["attempt"] == 2 and marker(again) == "FAILURE"
    assert (again / "INFO.1").exists() and (again / f"{again.name}.1.OUT").read_text() == \
        "attempt 1\n"
    assert out(again) == "attempt 2\n"
    assert info(by_name["slow"])["status"] == "timeout"
    for name, why in (("huge", "GPU=5"), ("pinned", "gpu_ids"), ("licensed", "license=1")):
        assert info(by_name[name])["status"] == "unschedulable"
        assert why in err(by_name[name])
    counts = {k: n for k, n in status_json(tmp_path)["counts"].items() if n}
    assert counts == {"succeeded": 4, "failed": 2, "timeout": 1, "unschedulable": 3}
    used = {r["name"]: r["max_rss_bytes"] for r in query(
        tmp_path / "output", "SELECT name, max_rss_bytes FROM jobs WHERE status = 'succeeded'")}
    assert sorted(used) == ["cpu", "half", "one", "two"] and all(used.values())   # stored


def test_a_yaml_sweep_and_a_yielder_run_on_ray(ray_hog, tmp_path):
    sweep = write(tmp_path / "sweep.yaml", """\
defaults: {gpus: 1}
jobs:
  - {cmd: "echo prep > prep.done", name: prep, gpus: 0}
  - sweep:
      cmd: "cat prep.done && echo lr={lr} on $CUDA_VISIBLE_DEVICES"
      name: train
      grid: {lr: [0.1, 0.01]}
      gpus: 0.5
      after: [prep]
  - {cmd: "echo big $CUDA_VISIBLE_DEVICES", name: big, gpus: 2, after: [train-lr=0.1]}
""")
    r = ray_hog.run("--job_file", sweep)
    assert r.returncode == 0, r.stdout + r.stderr
    names = {info(job_dir(tmp_path, i))["name"]: job_dir(tmp_path, i) for i in range(4)}
    assert set(names) == {"prep", "train-lr=0.1", "train-lr=0.01", "big"}
    assert out(names["train-lr=0.01"]).startswith("prep\nlr=0.01 on ")
    assert len(info(names["big"])["gpus"]) == 2
    yielder = write(tmp_path / "gen.py", """\
def yielder():
    for i in range(3):
        yield f"echo item {i}"
    yield {"cmd": "echo two $CUDA_VISIBLE_DEVICES", "gpus": 2, "name": "pair"}
""")
    r = ray_hog.run("--job_yielder", yielder, "--output_dir", "gen")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [out(job_dir(tmp_path, i, "gen")) for i in range(3)] == \
        [f"item {i}\n" for i in range(3)]
    assert len(info(job_dir(tmp_path, 3, "gen"))["gpus"]) == 2


# ----------------------------------------------------------- while it runs
def test_output_arrives_while_the_job_runs_and_hog_kill_ends_its_group(ray_hog, tmp_path):
    jobs = job_file(tmp_path,
                    "trap 'echo got TERM; exit 5' TERM; echo first; echo warn >&2; "
                    "sleep 300 & wait   # hog: name=long",
                    "echo quick")
    hog = ray_hog.start("--job_file", jobs)
    folder = job_dir(tmp_path, 0)
    wait_for(lambda: (folder / "job_0.OUT").exists() and out(folder) == "first\n"
             and err(folder) == "warn\n", timeout=60, what="output of the running job")
    assert info(folder)["status"] == "running" and not (folder / "SUCCESS").exists()
    assert len(job_pids_alive(tmp_path)) == 2          # bash and its sleep
    r = run_hog(tmp_path, "kill", "output", "long")
    assert r.returncode == 0, r.stderr
    assert hog.wait(60) == 0                           # a cancelled job is not a failure
    data = info(folder)
    assert (data["status"], data["exit_code"]) == ("cancelled", 5)
    assert out(folder) == "first\ngot TERM\n"
    assert marker(folder) == "FAILURE"
    assert not job_pids_alive(tmp_path)                # the sleep went with its group


def test_what_a_ray_job_starts_outside_its_group_ends_with_the_job(ray_hog, tmp_path):
    pids = tmp_path / "escaped"
    jobs = job_file(tmp_path,
                    f"setsid -f sh -c 'echo $$ >> {pids}; exec sleep 300'; "
                    f"setsid sh -c 'echo $$ >> {pids}; exec sleep 300' & sleep 0.3; echo ok")
    hog = ray_hog.start("--job_file", jobs)
    assert hog.wait(60) == 0
    escaped = [int(p) for p in pids.read_text().split()]
    assert len(escaped) == 2

    def sleeping(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/comm") as f:
                return f.read().strip() == "sleep"
        except OSError:
            return False
    wait_for(lambda: not any(sleeping(p) for p in escaped), timeout=10,
             what="the escapers ended with their job")
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"


def test_stop_now_interrupts_and_the_next_run_resumes(ray_hog, tmp_path):
    flag = tmp_path / "fast"
    jobs = job_file(tmp_path, *[f"[ -e {flag} ] || sleep 300; echo run $HOG_ATTEMPT"] * 2,
                    "echo quick")
    hog = ray_hog.start("--job_file", jobs)
    wait_for(lambda: len(job_pids_alive(tmp_path)) >= 4 and        # two bash, two sleep
             (job_dir(tmp_path, 2) / "SUCCESS").exists(), timeout=60, what="two jobs running")
    r = run_hog(tmp_path, "stop", "output", "--now")
    assert r.returncode == 0, r.stderr
    assert hog.wait(60) == 1
    for i in (0, 1):
        assert info(job_dir(tmp_path, i))["status"] == "interrupted"
    assert not job_pids_alive(tmp_path)
    flag.write_text("")
    r = ray_hog.run("--job_file", jobs)
    assert r.returncode == 0, r.stdout + r.stderr
    for i in (0, 1):
        folder = job_dir(tmp_path, i)
        assert marker(folder) == "SUCCESS" and out(folder) == "run 2\n"
        assert (folder / "INFO.1").exists()
    assert "skipped 1 job(s) that already succeeded" in r.stderr


def test_a_killed_hog_leaves_no_job_running_and_the_next_run_recovers(ray_hog, tmp_path):
    flag = tmp_path / "fast"
    jobs = job_file(tmp_path, f"[ -e {flag} ] || sleep 300 & wait", "echo done")
    hog = ray_hog.start("--job_file", jobs)
    wait_for(lambda: len(job_pids_alive(tmp_path)) >= 2, timeout=60, what="the job running")
    os.killpg(hog.pid, signal.SIGKILL)       # hog and its Ray driver, with no warning
    hog.wait(10)
    # Ray ends the dead driver's workers; each worker's keeper ends its jobs' groups
    wait_for(lambda: not job_pids_alive(tmp_path), timeout=60,
             what="the job's processes to end after hog died")
    flag.write_text("")
    r = ray_hog.run("--job_file", jobs)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "recovered" in r.stderr and "queued again" in r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS" and info(job_dir(tmp_path, 0))["attempt"] == 2


def test_if_hogs_ray_driver_dies_its_jobs_end_and_are_recorded_interrupted(ray_hog, tmp_path):
    jobs = job_file(tmp_path, "sleep 300 & wait", "sleep 300 & wait")
    hog = ray_hog.start("--job_file", jobs)
    wait_for(lambda: len(job_pids_alive(tmp_path)) >= 4, timeout=60, what="both jobs running")
    log = str(tmp_path / "output" / ".hog" / "ray.log")
    bridge = wait_for(lambda: [p for p in children_of(hog.pid)
                               if os.path.realpath(f"/proc/{p}/fd/2") == log], timeout=10,
                      what="hog's Ray driver process")
    os.kill(bridge[0], signal.SIGKILL)
    assert hog.wait(60) == 1
    text = hog.log.read_text()
    assert "the Ray driver process (hog-ray) died" in text and "Traceback" not in text
    for i in (0, 1):
        assert info(job_dir(tmp_path, i))["status"] == "interrupted"
    # Ray ends the dead driver's workers; each worker's keeper ends its jobs' groups
    wait_for(lambda: not job_pids_alive(tmp_path), timeout=30,
             what="the jobs to be ended once their driver died")


# ------------------------------------------------------------- scheduling
def test_ray_workers_are_reused_between_jobs(ray_hog, tmp_path):
    jobs = job_file(tmp_path, *["echo $PPID"] * 200)
    started = time.monotonic()
    r = ray_hog.run("--job_file", jobs, "-q")
    took = time.monotonic() - started
    assert r.returncode == 0, r.stdout + r.stderr
    workers = {out(job_dir(tmp_path, i)) for i in range(200)}   # a job's parent: its worker
    assert len(workers) <= 16, f"{len(workers)} Ray workers for 200 jobs"
    assert took < 90, f"200 trivial jobs took {took:.0f}s"


def test_a_two_gpu_job_in_a_stream_of_one_gpu_jobs_gets_to_run(ray_hog, tmp_path):
    lines = ["sleep 0.4"] * 30
    lines[4] = "sleep 0.4   # hog: name=wide gpus=2"
    r = ray_hog.run("--job_file", job_file(tmp_path, *lines))
    assert r.returncode == 0, r.stdout + r.stderr
    started = [info(job_dir(tmp_path, i))["started"] for i in range(30)]
    later = started[5:]
    assert all(s >= started[4] for s in later), \
        "jobs queued after the 2-GPU job started before it"
    assert len(info(job_dir(tmp_path, 4))["gpus"]) == 2


# -------------------------------------------------------------- set-up
def test_without_an_address_hog_runs_a_ray_instance_of_its_own(ray_netns, tmp_path):
    from .ray_support import Cluster, make_netns, stop_netns
    netns = make_netns()                 # its own: the shared cluster holds Ray's ports
    own = Cluster(netns)                 # only for its HOME and temp dir
    try:
        jobs = job_file(tmp_path, 'echo "on $CUDA_VISIBLE_DEVICES"   # hog: gpus=2',
                        "echo half   # hog: gpus=0.5")
        env = own.hog_env()
        r = subprocess.run(own.hog_argv("--backend", "ray", "--gpus", "4,7", "--job_file", jobs,
                                        "--display", "plain"),
                           cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        assert out(job_dir(tmp_path, 0)) == "on 4,7\n"
        assert info(job_dir(tmp_path, 1))["gpus"][0] in ("4", "7")
    finally:
        left = own.stop()
        stop_netns(netns)
    assert not left, "the Ray instance hog started outlived it:\n" + "\n".join(left)


@pytest.mark.skipif(why_no_ray() is not None, reason=str(why_no_ray()))
def test_ray_options_are_checked_before_anything_starts(tmp_path):
    jobs = job_file(tmp_path, "true")
    for args, text in ((["--gpus", "0,0"], "listed once"),
                       (["--ray_address", "127.0.0.1:1", "--gpus", "0"], "ray start --num-gpus"),
                       (["--cpu_slots", "2"], "--cpu_slots does not apply"),
                       (["--resources", "a=1"], "ray start --resources")):
        r = run_hog(tmp_path, "--backend", "ray", "--job_file", jobs, *args)
        assert r.returncode == 2 and text in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    r = run_hog(tmp_path, "--job_file", jobs, "--ray_address", "x:1")
    assert r.returncode == 2 and "--backend ray" in r.stderr
    assert not (tmp_path / "output").exists()
