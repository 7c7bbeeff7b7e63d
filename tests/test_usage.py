"""What each attempt used: CPU seconds and peak resident memory from the kernel's
accounting of the reaped job, GPU memory peak and mean utilisation from the GPU monitor
(a fake ``nvidia-smi`` first on PATH, or a fake ``pynvml`` module on PYTHONPATH), each
attributed to the job whose process holds it; and ``memory=`` packing that leaves out
what processes hog did not start hold.

The fakes answer from files: ``gpus.csv`` (index, uuid, name, total MiB, used MiB,
utilisation %) and one line per process in ``apps.d/`` (uuid, pid, MiB), written there
by the jobs themselves (their own pid) or by the test (a foreign process). Each look
is logged, so a job can run until the monitor has looked at it twice.
"""
import csv
import json
import os
from pathlib import Path

from hog.backends.scheduler import Capacity, Scheduler
from hog.gpus.discovery import ComputeApp, Gpu
from hog.gpus.monitor import foreign_memory, job_of
from hog.model import Job, Slot
from hog.views.report import pack

from .harness import dead_pid, info, job_dir, job_file, run_hog, start_hog, wait_for
from .test_gpu_checks import no_smi_env

MIB = 2 ** 20
G = 2 ** 30

FAKE_SMI = r"""#!/bin/bash
case "$*" in
  "--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu "*)
    echo gpu >> {dir}/calls.log; exec cat {dir}/gpus.csv ;;
  "--query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader,nounits")
    echo apps >> {dir}/calls.log; cat {dir}/apps.d/* 2>/dev/null; exit 0 ;;
esac
echo "fake nvidia-smi: unsupported arguments: $*" >&2
exit 9
"""

FAKE_NVML = r'''
"""A fake pynvml for hog's tests: answers from the files in $FAKE_GPU_DIR."""
import os
from types import SimpleNamespace

_DIR = os.environ["FAKE_GPU_DIR"]


class NVMLError(Exception):
    pass


def _gpus():
    with open(os.path.join(_DIR, "gpus.csv")) as f:
        return [[p.strip() for p in line.split(",")] for line in f if line.strip()]


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlDeviceGetCount():
    with open(os.path.join(_DIR, "calls.log"), "a") as f:
        f.write("apps\n")
    return len(_gpus())


def nvmlDeviceGetHandleByIndex(i):
    return _gpus()[i]


def nvmlDeviceGetUUID(h):
    return h[1].encode()


def nvmlDeviceGetName(h):
    return h[2]


def nvmlDeviceGetMemoryInfo(h):
    total, used = int(h[3]) * 2 ** 20, int(h[4]) * 2 ** 20
    return SimpleNamespace(total=total, used=used, free=total - used)


def nvmlDeviceGetUtilizationRates(h):
    return SimpleNamespace(gpu=int(h[5]), memory=0)


def nvmlDeviceGetComputeRunningProcesses(h):
    out = []
    apps = os.path.join(_DIR, "apps.d")
    for name in os.listdir(apps):
        with open(os.path.join(apps, name)) as f:
            for line in f:
                parts = [p.strip() for p in line.split(",")]
                if len(parts) == 3 and parts[0] == h[1]:
                    out.append(SimpleNamespace(pid=int(parts[1]),
                                               usedGpuMemory=int(parts[2]) * 2 ** 20))
    return out
'''


class FakeGpus:
    """Two fake GPUs (80 GiB each) and their processes; ``smi_env`` or ``nvml_env``."""

    def __init__(self, tmp_path: Path, util=(80, 2), used=(0, 0), total=81920):
        self.dir = tmp_path / "gpus"
        (self.dir / "apps.d").mkdir(parents=True)
        self.log = self.dir / "calls.log"
        self.set_gpus(util, used, total)
        self.tmp = tmp_path

    def set_gpus(self, util, used, total=81920) -> None:
        tmp = self.dir / "gpus.tmp"
        tmp.write_text("".join(f"{i}, GPU-fake-{i}, Fake GPU, {total}, {used[i]}, {util[i]}\n"
                               for i in range(len(util))))
        os.replace(tmp, self.dir / "gpus.csv")

    def app(self, name: str, gpu: int, pid: int, mib: int) -> None:
        tmp = self.dir / f"{name}.tmp"
        tmp.write_text(f"GPU-fake-{gpu}, {pid}, {mib}\n")
        os.replace(tmp, self.dir / "apps.d" / name)

    def smi_env(self) -> dict:
        bin_dir = self.tmp / "fakebin"
        bin_dir.mkdir()
        exe = bin_dir / "nvidia-smi"
        exe.write_text(FAKE_SMI.replace("{dir}", str(self.dir)))
        exe.chmod(0o755)
        return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    def nvml_env(self) -> dict:
        mod = self.tmp / "fakenvml"
        mod.mkdir()
        (mod / "pynvml.py").write_text(FAKE_NVML)
        env = no_smi_env(self.tmp)
        env.update(FAKE_GPU_DIR=str(self.dir),
                   PYTHONPATH=f"{mod}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        return env

    def looks(self) -> int:
        return self.log.read_text().count("apps") if self.log.exists() else 0

    def wait_looks(self, n: int, timeout: float = 15) -> None:
        start = self.looks()
        wait_for(lambda: self.looks() >= start + n, timeout, what=f"{n} more GPU looks")

    def until_looked_at(self) -> str:
        """Shell that waits until the monitor has looked twice more (a full look while
        the job's processes are reported). The monitor's first look may come as the
        first jobs start (engine/gpuwatch.py), before it knows them: counted from it."""
        log = self.log
        return (f'until [ -e {log} ]; do sleep 0.05; done; n=$(grep -c apps {log}); '
                f'while [ "$(grep -c apps {log})" -lt $((n + 2)) ]; do sleep 0.05; done')


HOLDER = """import os, subprocess, sys
apps, name, mib, wait = sys.argv[1:]
path = os.path.join(apps, name)
with open(path, "w") as f:
    f.write(f"GPU-fake-{os.environ['CUDA_VISIBLE_DEVICES']}, {os.getpid()}, {mib}\\n")
subprocess.run(["bash", "-c", wait])
os.remove(path)
"""


def gpu_job(fake: FakeGpus, name: str, mib: int) -> str:
    """A job whose Python child (not the job's leader) reports itself holding ``mib``
    MiB on the job's GPU, until the monitor has looked at it twice."""
    script = fake.tmp / "holder.py"
    script.write_text(HOLDER)
    return f"python3 {script} {fake.dir / 'apps.d'} {name} {mib} {fake.until_looked_at()!r}"


def results(tmp_path: Path) -> dict:
    path = tmp_path / "output" / "results.jsonl"
    return {r["name"]: r for r in map(json.loads, path.read_text().splitlines())}


# ------------------------------------------------------------- CPU and memory
BURN = """import signal, sys, time
if sys.argv[2:] == ["stay"]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)     # outlives the job's end a moment
    open("ready", "w").close()                        # the job ends only after this
b = bytearray(int(sys.argv[1]) * 2 ** 20)
for i in range(0, len(b), 4096):
    b[i] = 1
t, x = time.process_time(), 0
while time.process_time() - t < 0.35:
    for _ in range(20000):
        x += 1
"""


def test_cpu_seconds_and_peak_memory_are_those_of_each_jobs_own_process_tree(tmp_path):
    (tmp_path / "burn.py").write_text(BURN)
    job_file(tmp_path, "bash -c 'python3 burn.py 200'  # hog: name=burner",
             "sleep 0.3  # hog: name=sleeper")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", env=no_smi_env(tmp_path))
    assert r.returncode == 0, r.stderr
    burner, sleeper = info(job_dir(tmp_path, 0)), info(job_dir(tmp_path, 1))
    # the burner's Python is a grandchild of the job's leader (bash -c 'python3 ...')
    assert burner["cpu_user_s"] >= 0.2 and burner["max_rss_bytes"] >= 200 * 2 ** 20
    assert sleeper["cpu_user_s"] < 0.1 and sleeper["max_rss_bytes"] < 100 * 2 ** 20
    assert list(burner)[-3:] == ["cpu_user_s", "cpu_system_s", "max_rss_bytes"]
    rec = results(tmp_path)
    assert rec["burner"]["cpu_user_s"] == burner["cpu_user_s"]
    assert rec["burner"]["max_rss_bytes"] == burner["max_rss_bytes"]
    # no GPU can be asked: GPU figures are empty, nothing fails
    assert rec["burner"]["gpu_mem_peak_bytes"] is None and rec["burner"]["gpu_util_mean"] is None
    assert "gpu_mem_peak_bytes" not in burner
    with open(tmp_path / "output" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["cpu_user_s"]) >= 0.2 and rows[0]["gpu_mem_peak_bytes"] == ""
    st = run_hog(tmp_path, "status", "output", "--json")
    finished = {j["name"]: j for j in json.loads(st.stdout)["finished"]}
    assert finished["burner"]["max_rss_bytes"] == burner["max_rss_bytes"]
    assert finished["sleeper"]["cpu_user_s"] == sleeper["cpu_user_s"]


def test_what_a_job_leaves_behind_is_counted_once_its_slot_reaps_it(tmp_path):
    """A child the job does not wait for, still burning as the job's leader exits (it
    ignores the TERM that ends a job's leftovers), is reaped by the slot, its subreaper."""
    (tmp_path / "burn.py").write_text(BURN)
    job_file(tmp_path, "python3 burn.py 1 stay & until [ -e ready ]; do sleep 0.01; done; exit 0")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", env=no_smi_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert info(job_dir(tmp_path, 0))["cpu_user_s"] >= 0.2


# ------------------------------------------------------------------ GPU usage
def check_gpu_attribution(tmp_path: Path, fake: FakeGpus, env: dict) -> None:
    job_file(tmp_path, gpu_job(fake, "user", 3000) + "  # hog: name=user",
             fake.until_looked_at() + "  # hog: name=idle")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", env=env)
    assert r.returncode == 0, r.stderr
    user, idle = info(job_dir(tmp_path, 0)), info(job_dir(tmp_path, 1))
    assert user["gpus"] == ["0"] and idle["gpus"] == ["1"]
    assert user["gpu_mem_peak_bytes"] == 3000 * MIB and user["gpu_util_mean"] == 80.0
    assert idle["gpu_mem_peak_bytes"] == 0 and idle["gpu_util_mean"] == 2.0
    marker = (job_dir(tmp_path, 0) / "SUCCESS").read_text()
    assert "gpu_mem_peak_bytes: 3145728000" in marker       # the marker says the same
    rec = results(tmp_path)
    assert rec["user"]["gpu_mem_peak_bytes"] == 3000 * MIB and rec["idle"]["gpu_util_mean"] == 2.0
    log = [json.loads(line) for line in
           (tmp_path / "output" / ".hog" / "gpus.jsonl").read_text().splitlines()]
    assert log and set(log[0]["gpus"]) == {"0", "1"}
    assert max(look["gpus"]["0"][1] for look in log) == 80


def test_gpu_memory_and_utilisation_go_to_the_job_whose_process_holds_them_smi(tmp_path):
    fake = FakeGpus(tmp_path)
    check_gpu_attribution(tmp_path, fake, fake.smi_env())
    r = run_hog(tmp_path, "report", "output")
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "output" / "report.html").read_text()
    assert "GPU memory over time per GPU" in page and page.count("<polyline") == 2
    flagged = page[page.index('class="idle-gpu"'):]
    assert '<b>idle</b>' in flagged and '<b>user</b>' not in flagged   # held GPU 1, 2 %
    data = json.loads(page[page.index('id="hog-data">') + 14:page.index("</script>",
                                                                         page.index('id="hog-data">'))])
    jobs = pack.unpack(data)["jobs"]
    assert jobs["gmem"][jobs["name"].index("user")] == 3000 * MIB


def test_gpu_memory_and_utilisation_go_to_the_job_whose_process_holds_them_nvml(tmp_path):
    fake = FakeGpus(tmp_path)
    check_gpu_attribution(tmp_path, fake, fake.nvml_env())


# ------------------------------------------------------ others' GPU memory
def test_memory_held_by_a_process_hog_did_not_start_is_not_free_for_memory_jobs(tmp_path):
    fake = FakeGpus(tmp_path, used=(71680, 0))
    fake.app("foreign", 0, 1, 71680)        # pid 1: never one of hog's jobs
    job_file(tmp_path, "echo fits  # hog: memory=60G")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1", env=fake.smi_env())
    assert r.returncode == 0, r.stderr
    assert info(job_dir(tmp_path, 0))["gpus"] == ["1"]      # not on GPU 0: 10 GB free there


def test_a_memory_job_waits_for_others_to_free_the_gpu_then_runs(tmp_path):
    fake = FakeGpus(tmp_path, used=(71680, 0))
    fake.app("foreign", 0, 1, 71680)
    job_file(tmp_path, "echo ran  # hog: memory=60G")
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", env=fake.smi_env())
    fake.wait_looks(2)
    assert not (job_dir(tmp_path, 0) / "INFO").exists() and hog.alive()   # waits, queued
    (fake.dir / "apps.d" / "foreign").unlink()
    fake.set_gpus((0, 0), (0, 0))
    assert hog.wait(30) == 0, hog.output
    assert (job_dir(tmp_path, 0) / "SUCCESS").exists()


def test_foreign_memory_counts_others_processes_and_what_no_process_explains():
    gpus = [Gpu("0", "u0", "g", 81920, 71680 + 1000), Gpu("1", "u1", "g", 81920, 5000)]
    apps = [ComputeApp("u0", 101, 71680), ComputeApp("u0", 202, 1000),
            ComputeApp("u1", 202, 3000)]
    held = foreign_memory(gpus, apps, frozenset({202}), session=lambda pid: None)
    assert held["0"] == held["u0"] == 71680 * MIB
    assert held["1"] == 2000 * MIB          # in use, not ours, listed for nobody


def test_scheduler_places_memory_jobs_in_what_others_leave_free():
    sched = Scheduler(Capacity(slots=[Slot(0, "0"), Slot(1, "0")],
                               gpu_memory={"0": 80 * G}))
    job = Job(index=1, command="x", resources=(("memory", 60 * G),))
    sched.set_foreign_memory({"0": 70 * G})
    assert sched.never_fits(job) is None        # it waits, never unschedulable
    assert sched.schedule([job], lambda j: True) == []
    sched.set_foreign_memory({"0": 10 * G})
    assert [p.job_id for p in sched.schedule([job], lambda j: True)] == [1]


def test_a_gpu_process_belongs_to_the_job_above_it_even_in_another_session():
    parent = os.getppid()       # stands for a job's leader: this process is below it
    assert job_of(os.getpid(), {parent}) == parent
    assert job_of(os.getpid(), {dead_pid()}) is None
