"""Keeping jobs off GPUs that others use (--min_free_memory, --exclusive), and GPU
memory totals from nvidia-smi.

A fake ``nvidia-smi`` (a bash script first on PATH) answers the two queries hog makes
from files this test rewrites while hog runs: ``gpus.csv`` for
``--query-gpu=index,uuid,name,memory.total,memory.used`` and ``apps.csv`` for
``--query-compute-apps=gpu_uuid,pid,used_memory`` (both ``--format=csv,noheader,nounits``).
It logs every call, so a test can wait until hog has asked again.
"""
import os
import time
from pathlib import Path

import pytest

from hog.gpus.discovery import ComputeApp, Gpu
from hog.gpus.monitor import unavailable_gpus

from .harness import (
    err,
    info,
    job_dir,
    job_dirs,
    job_file,
    marker,
    max_overlap,
    out,
    run_hog,
    start_hog,
    wait_for,
)

MIB = 2 ** 20
G = 2 ** 30



# ------------------------------------------------------------ the fake
FAKE = r"""#!/bin/bash
# fake nvidia-smi for hog's tests: answers from files the test rewrites
echo "$*" >> {log}
case "$*" in
  "--query-gpu=index,uuid,name,memory.total,memory.used --format=csv,noheader,nounits")
    exec cat {gpus} ;;
  "--query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader,nounits")
    exec cat {apps} ;;
esac
echo "fake nvidia-smi: unsupported arguments: $*" >&2
exit 9
"""


def uuid(index) -> str:
    return f"GPU-fake-{index}"


class FakeSmi:
    """The fake's answers; ``env`` puts it first on PATH."""

    def __init__(self, tmp_path: Path, total_mib=(16384, 16384)):
        self.dir = tmp_path / "smi"
        self.dir.mkdir()
        self.bin = tmp_path / "fakebin"
        self.bin.mkdir()
        self.gpus_path = self.dir / "gpus.csv"
        self.apps_path = self.dir / "apps.csv"
        self.log = self.dir / "calls.log"
        self.total = list(total_mib)
        self.set(used={}, apps=[])
        exe = self.bin / "nvidia-smi"
        exe.write_text(FAKE.format(log=self.log, gpus=self.gpus_path, apps=self.apps_path))
        exe.chmod(0o755)
        self.env = {"PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"}

    @staticmethod
    def _replace(path: Path, text: str) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def set(self, used=None, apps=None) -> None:
        """``used``: {gpu index: MiB used}; ``apps``: [(gpu index, pid, MiB)]."""
        if apps is not None:
            self._replace(self.apps_path, "".join(f"{uuid(g)}, {pid}, {mib}\n"
                                                  for g, pid, mib in apps))
        if used is not None:
            self._replace(self.gpus_path, "".join(
                f"{i}, {uuid(i)}, Fake GPU, {total}, {used.get(i, 0)}\n"
                for i, total in enumerate(self.total)))

    def app_queries(self) -> int:
        if not self.log.exists():
            return 0
        return sum(1 for line in self.log.read_text().splitlines()
                   if line.startswith("--query-compute-apps"))

    def wait_for_checks(self, n=2, timeout=10) -> None:
        """Wait until hog has asked about compute apps ``n`` more times."""
        start = self.app_queries()
        wait_for(lambda: self.app_queries() >= start + n, timeout,
                 what=f"{n} more nvidia-smi checks")


def no_smi_env(tmp_path) -> dict:
    """PATH as it is, but with no nvidia-smi anywhere on it."""
    dirs = []
    for i, d in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        if d and os.path.exists(os.path.join(d, "nvidia-smi")):
            clean = tmp_path / f"path-{i}"
            clean.mkdir()
            for name in os.listdir(d):
                if name != "nvidia-smi":
                    os.symlink(os.path.join(d, name), clean / name)
            d = str(clean)
        dirs.append(d)
    return {"PATH": os.pathsep.join(dirs)}


def gpus_log_job(log, body="sleep 0.2"):
    return f'echo "$CUDA_VISIBLE_DEVICES $EPOCHREALTIME" >> {log}; {body}'


def gpus_in_log(log):
    if not log.exists():
        return []
    return [(line.split()[0], float(line.split()[1])) for line in log.read_text().splitlines()]


# ------------------------------------------------- unavailable_gpus (pure)
def gpu(i, total=16384, used=0):
    return Gpu(str(i), uuid(i), "Fake GPU", total, used)


def app(i, pid, mib):
    return ComputeApp(uuid(i), pid, mib)


def no_session(pid):
    return None


def test_others_memory_beyond_the_free_minimum_makes_a_gpu_unavailable():
    gpus = [gpu(0, used=12000), gpu(1, used=2000)]
    apps = [app(0, 100, 12000), app(1, 101, 2000)]
    out = unavailable_gpus(gpus, apps, frozenset(), 10 * G, False, session=no_session)
    assert out == {"0", uuid(0)}


def test_a_gpu_with_exactly_the_minimum_free_is_available():
    gpus = [gpu(0, total=20480, used=10240)]
    apps = [app(0, 100, 10240)]
    assert unavailable_gpus(gpus, apps, frozenset(), 10 * G, False, session=no_session) == set()
    assert unavailable_gpus(gpus, apps, frozenset(), 10 * G + MIB, False,
                            session=no_session) == {"0", uuid(0)}


def test_memory_used_that_no_listed_process_explains_counts_as_others():
    """Other users' processes may be invisible in the app list: memory.used tells."""
    gpus = [gpu(0, used=12000)]
    assert unavailable_gpus(gpus, [], frozenset(), 10 * G, False,
                            session=no_session) == {"0", uuid(0)}


def test_hogs_own_job_pids_never_count_as_others():
    gpus = [gpu(0, used=15000)]
    apps = [app(0, 4242, 15000)]
    assert unavailable_gpus(gpus, apps, frozenset({4242}), 10 * G, False,
                            session=no_session) == set()
    assert unavailable_gpus(gpus, apps, frozenset({4242}), None, True,
                            session=no_session) == set()


def test_processes_in_a_hog_jobs_session_never_count_as_others():
    """A job's child (python under bash) is listed, not the job's pid: its session is."""
    gpus = [gpu(0, used=15000)]
    apps = [app(0, 5000, 15000)]
    sessions = {5000: 4242}
    for min_free, exclusive in ((10 * G, False), (None, True)):
        assert unavailable_gpus(gpus, apps, frozenset({4242}), min_free, exclusive,
                                session=sessions.get) == set()


def test_ours_and_others_on_one_gpu_only_others_count():
    gpus = [gpu(0, used=14000)]
    apps = [app(0, 4242, 10000), app(0, 777, 4000)]      # 16384 - 4000 >= 10G: fine
    assert unavailable_gpus(gpus, apps, frozenset({4242}), 10 * G, False,
                            session=no_session) == set()
    apps = [app(0, 4242, 4000), app(0, 777, 10000)]      # 16384 - 10000 < 10G
    assert unavailable_gpus(gpus, apps, frozenset({4242}), 10 * G, False,
                            session=no_session) == {"0", uuid(0)}


def test_exclusive_makes_any_foreign_process_block_its_gpu():
    gpus = [gpu(0), gpu(1), gpu(2)]
    apps = [app(1, 777, 1), app(2, 4242, 9000)]
    assert unavailable_gpus(gpus, apps, frozenset({4242}), None, True,
                            session=no_session) == {"1", uuid(1)}


def test_exclusive_off_and_no_minimum_blocks_nothing():
    gpus = [gpu(0, used=16000)]
    apps = [app(0, 777, 16000)]
    assert unavailable_gpus(gpus, apps, frozenset(), None, False, session=no_session) == set()


def test_apps_on_gpus_nvidia_smi_did_not_list_are_ignored():
    gpus = [gpu(0)]
    apps = [ComputeApp("GPU-elsewhere", 777, 16000)]
    assert unavailable_gpus(gpus, apps, frozenset(), 10 * G, True, session=no_session) == set()


def test_a_gpu_without_a_memory_total_is_not_judged_by_free_memory():
    gpus = [Gpu("0", uuid(0), "Fake GPU", None, None)]
    apps = [app(0, 777, 16000)]
    assert unavailable_gpus(gpus, apps, frozenset(), 10 * G, False, session=no_session) == set()


# ------------------------------------------------------------- end to end
def test_min_free_memory_keeps_jobs_off_a_gpu_others_fill(tmp_path):
    smi = FakeSmi(tmp_path)
    smi.set(used={0: 12000}, apps=[(0, os.getpid(), 12000)])
    log = tmp_path / "gpus.log"
    job_file(tmp_path, *[gpus_log_job(log, "sleep 0.05")] * 6)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", "--min_free_memory", "10G",
                env=smi.env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [g for g, _ in gpus_in_log(log)] == ["1"] * 6
    assert smi.app_queries() >= 1


def test_jobs_use_a_gpu_again_soon_after_others_free_it(tmp_path):
    smi = FakeSmi(tmp_path)
    smi.set(used={0: 12000}, apps=[(0, os.getpid(), 12000)])
    log, seen = tmp_path / "gpus.log", tmp_path / "seen"
    # enough jobs to outlast the 5 s bound below on one GPU; once the test has seen what it
    # waits for, the rest end at once
    job_file(tmp_path, *[gpus_log_job(log, f"[ -e {seen} ] || sleep 0.25")] * 40)
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1",
                    "--min_free_memory", "10G", env=smi.env)
    wait_for(lambda: len(gpus_in_log(log)) >= 3, 15, what="three jobs to start")
    assert {g for g, _ in gpus_in_log(log)} == {"1"}
    freed_at = time.time()
    smi.set(used={}, apps=[])
    wait_for(lambda: any(g == "0" for g, _ in gpus_in_log(log)), 10,
             what="a job on GPU 0 once it was freed")
    first_on_0 = min(t for g, t in gpus_in_log(log) if g == "0")
    assert first_on_0 - freed_at <= 5.0
    seen.touch()
    assert hog.wait(30) == 0, hog.output
    assert all(marker(d) == "SUCCESS" for d in job_dirs(tmp_path))


def test_exclusive_keeps_jobs_off_a_gpu_with_a_foreign_process(tmp_path):
    smi = FakeSmi(tmp_path)
    smi.set(used={1: 300}, apps=[(1, os.getpid(), 300)])
    log = tmp_path / "gpus.log"
    job_file(tmp_path, *[gpus_log_job(log, "sleep 0.05")] * 6)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", "--exclusive",
                env=smi.env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [g for g, _ in gpus_in_log(log)] == ["0"] * 6


def test_exclusive_counts_a_foreign_process_that_uses_no_memory(tmp_path):
    smi = FakeSmi(tmp_path)
    smi.set(used={}, apps=[(1, os.getpid(), 0)])
    log = tmp_path / "gpus.log"
    job_file(tmp_path, *[gpus_log_job(log, "sleep 0.05")] * 4)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", "--exclusive",
                env=smi.env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [g for g, _ in gpus_in_log(log)] == ["0"] * 4


@pytest.mark.parametrize("flags", [["--min_free_memory", "10G"], ["--exclusive"]],
                         ids=["min_free_memory", "exclusive"])
def test_hogs_own_running_job_on_a_gpu_does_not_make_it_unavailable(tmp_path, flags):
    """Two slots on GPU 0. Job 0 lists itself ($$) and its child as compute apps using
    15 GB of GPU 0, then waits for job 2. Job 1 waits until hog has asked nvidia-smi
    twice since, then ends, freeing a slot. Job 2 can only start on GPU 0 while job 0
    runs if hog did not count job 0 as someone else's process."""
    smi = FakeSmi(tmp_path)
    listed, go = tmp_path / "listed", tmp_path / "go"
    checks = smi.log
    job0 = (f'sleep 60 & child=$!; '
            f'echo "{uuid("$CUDA_VISIBLE_DEVICES")}, $$, 10000" > {smi.apps_path}.new; '
            f'echo "{uuid("$CUDA_VISIBLE_DEVICES")}, $child, 5000" >> {smi.apps_path}.new; '
            f'echo "0, {uuid(0)}, Fake GPU, 16384, 15000" > {smi.gpus_path}.new; '
            f'echo "1, {uuid(1)}, Fake GPU, 16384, 0" >> {smi.gpus_path}.new; '
            f'mv {smi.gpus_path}.new {smi.gpus_path}; mv {smi.apps_path}.new {smi.apps_path}; '
            f'touch {listed}; '
            # on the way out (also if the test fails) stop listing ourselves
            f'trap \'kill $child; : > {smi.apps_path}; '
            f'echo "0, {uuid(0)}, Fake GPU, 16384, 0" > {smi.gpus_path}; '
            f'echo "1, {uuid(1)}, Fake GPU, 16384, 0" >> {smi.gpus_path}\' EXIT; '
            f'for _ in $(seq 200); do [ -e {go} ] && exit 0; sleep 0.05; done; exit 1')
    job1 = (f'for _ in $(seq 200); do [ -e {listed} ] && break; sleep 0.05; done; '
            f'n=$(grep -c compute-apps {checks}); '
            f'for _ in $(seq 200); do '
            f'[ $(grep -c compute-apps {checks}) -ge $((n + 2)) ] && break; sleep 0.05; done; '
            f'sleep 0.6')                  # one more runner tick applies the latest verdict
    job2 = f'echo "$CUDA_VISIBLE_DEVICES"; touch {go}'
    job_file(tmp_path, job0 + "  # hog: gpu_ids=0", job1 + "  # hog: gpu_ids=0",
             job2 + "  # hog: gpu_ids=0")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0", *flags,
                env=smi.env, timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    assert out(job_dir(tmp_path, 2)).strip() == "0"
    # job 2 started while job 0 still ran (job 0 ended because job 2 said go)
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS", err(job_dir(tmp_path, 0))
    assert "in use by others" not in r.stdout + r.stderr


def test_memory_totals_come_from_nvidia_smi_when_gpu_memory_is_not_given(tmp_path):
    smi = FakeSmi(tmp_path, total_mib=(40960, 16384))
    rec = tmp_path / "rec"
    rec.mkdir()
    job = (f's=$EPOCHREALTIME; sleep 0.4; '
           f'echo "$s $EPOCHREALTIME" > {rec}/$HOG_JOB_INDEX  # hog: memory=20G')
    job_file(tmp_path, *[job] * 5)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,0", env=smi.env,
                timeout=60)
    assert r.returncode == 0, r.stderr
    spans = [tuple(map(float, f.read_text().split())) for f in rec.iterdir()]
    assert len(spans) == 5
    assert max_overlap(spans) == 2


def test_a_memory_job_larger_than_what_nvidia_smi_reports_is_unschedulable(tmp_path):
    smi = FakeSmi(tmp_path, total_mib=(40960, 16384))
    job_file(tmp_path, "echo small  # hog: memory=8G", "echo big  # hog: memory=50G")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", env=smi.env, timeout=60)
    assert r.returncode == 1
    assert "memory=50G" in r.stderr and "40G" in r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    assert info(job_dir(tmp_path, 1))["status"] == "unschedulable"


def test_memory_jobs_without_nvidia_smi_or_gpu_memory_are_unschedulable_and_say_why(tmp_path):
    job_file(tmp_path, "echo plain", "echo mem  # hog: memory=8G")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", env=no_smi_env(tmp_path),
                timeout=60)
    assert r.returncode == 1
    assert "--gpu_memory" in r.stderr
    assert marker(job_dir(tmp_path, 0)) == "SUCCESS"
    assert info(job_dir(tmp_path, 1))["status"] == "unschedulable"


@pytest.mark.parametrize("flags", [["--min_free_memory", "10G"], ["--exclusive"]],
                         ids=["min_free_memory", "exclusive"])
def test_gpu_checks_without_nvidia_smi_are_a_clear_usage_error(tmp_path, flags):
    ran = tmp_path / "ran"
    job_file(tmp_path, f"touch {ran}")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", *flags,
                env=no_smi_env(tmp_path), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "nvidia-smi" in r.stderr and flags[0] in r.stderr
    assert "Traceback" not in r.stderr
    assert not ran.exists()
    assert not job_dir(tmp_path, 0).exists()


def test_a_bad_min_free_memory_is_a_usage_error(tmp_path):
    smi = FakeSmi(tmp_path)
    job_file(tmp_path, "echo a")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--min_free_memory", "lots",
                env=smi.env)
    assert r.returncode == 2
    assert "--min_free_memory" in r.stderr and "'lots'" in r.stderr


# ------------------------------------------- when the monitor's first look comes
def held_smi(smi: FakeSmi) -> Path:
    """Make ``smi`` answer only once the returned file exists (30 s at most): an
    nvidia-smi that takes its time, as on a busy machine with many GPUs."""
    release = smi.dir / "release"
    exe = smi.bin / "nvidia-smi"
    text = exe.read_text()
    exe.write_text(text.replace(
        "case", f"for i in $(seq 600); do [ -e {release} ] && break; sleep 0.05; done\ncase", 1))
    return release


def test_the_first_job_does_not_wait_for_the_gpu_monitors_first_look(tmp_path):
    smi = FakeSmi(tmp_path)
    release = held_smi(smi)
    stamp = tmp_path / "stamp"
    job_file(tmp_path, f"touch {stamp}", "true")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", env=smi.env)
    try:
        wait_for(stamp.exists, 20, what="the first job, with nvidia-smi not answering")
        assert not release.exists()
    finally:
        release.touch()
    assert hog.wait(30) == 0, hog.output
    assert smi.log.exists()                     # the monitor asked, in its thread
    assert marker(job_dir(tmp_path, 1)) == "SUCCESS"


@pytest.mark.parametrize("flags", [["--min_free_memory", "10G"], ["--exclusive"]],
                         ids=["min_free_memory", "exclusive"])
def test_with_gpu_checks_no_job_starts_before_the_first_look(tmp_path, flags):
    smi = FakeSmi(tmp_path)
    release = held_smi(smi)
    stamp = tmp_path / "stamp"
    job_file(tmp_path, f"echo $EPOCHREALTIME > {stamp}")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", *flags, env=smi.env)
    try:
        wait_for(smi.log.exists, 20, what="hog asking nvidia-smi")
        released = time.time()
    finally:
        release.touch()
    assert hog.wait(30) == 0, hog.output
    assert float(stamp.read_text()) > released
