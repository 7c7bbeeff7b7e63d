"""GPU discovery through nvidia-smi (a fake one, first on PATH), restricted to
CUDA_VISIBLE_DEVICES; `hog gpus`; no --gpus (or --gpus all) uses what is found."""
import os
import shutil
import sys

from .harness import (
    assert_no_traceback,
    job_dir,
    job_dirs,
    job_file,
    out,
    run_hog,
    runner_rows,
    start_hog,
    wait_for,
)

GPUS = [
    # index, uuid, name, memory.total, memory.used
    ("0", "GPU-aaaaaaaa-0000-0000-0000-000000000000", "NVIDIA H100 80GB HBM3", 81559, 10),
    ("1", "GPU-bbbbbbbb-1111-1111-1111-111111111111", "NVIDIA H100 80GB HBM3", 81559, 20),
    ("2", "GPU-cccccccc-2222-2222-2222-222222222222", "NVIDIA H100 80GB HBM3", 81559, 30),
    ("3", "GPU-dddddddd-3333-3333-3333-333333333333", "NVIDIA H100 80GB HBM3", 81559, 40),
]

FAKE = '''\
#!{python}
"""A stand-in for nvidia-smi: answers --query-gpu=... --format=csv[,noheader][,nounits]
and -L from a fixed table."""
import sys

GPUS = {gpus!r}
FIELDS = {{"index": 0, "uuid": 1, "name": 2, "gpu_name": 2, "memory.total": 3,
          "memory.used": 4, "memory.free": None, "pci.bus_id": None}}
args = sys.argv[1:]
with open({log!r}, "a") as f:
    f.write(" ".join(args) + "\\n")
if {fail}:
    sys.stderr.write("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver\\n")
    sys.exit(9)
if "-L" in args or "--list-gpus" in args:
    for g in GPUS:
        print(f"GPU {{g[0]}}: {{g[2]}} (UUID: {{g[1]}})")
    sys.exit(0)
query = [a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")]
fmt = [a.split("=", 1)[1] for a in args if a.startswith("--format=")]
if not query:
    print("fake nvidia-smi: only --query-gpu and -L are supported", file=sys.stderr)
    sys.exit(2)
fields = [f.strip() for f in query[0].split(",")]
opts = fmt[0].split(",") if fmt else ["csv"]
units = "nounits" not in opts
if "noheader" not in opts:
    print(", ".join(fields))
for g in GPUS:
    row = []
    for f in fields:
        i = FIELDS.get(f)
        if f == "memory.free":
            v = g[3] - g[4]
        elif f == "pci.bus_id":
            v = "00000000:%02X:00.0" % (int(g[0]) + 0x18)
        else:
            v = g[i]
        if f.startswith("memory.") and units:
            v = f"{{v}} MiB"
        row.append(str(v))
    print(", ".join(row))
'''  # noqa: E501 - the driver's message, verbatim


def fake_smi(tmp_path, gpus=GPUS, fail=False):
    """A bin folder holding a fake nvidia-smi; env to put it first on PATH."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "nvidia-smi.calls"
    exe = bindir / "nvidia-smi"
    exe.write_text(FAKE.format(python=sys.executable, gpus=list(gpus), log=str(log), fail=fail))
    exe.chmod(0o755)
    return {"PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}


def no_smi(tmp_path):
    """An env whose PATH has bash (and coreutils) but no nvidia-smi."""
    bindir = tmp_path / "bin-no-smi"
    bindir.mkdir(exist_ok=True)
    for tool in ("bash", "sleep", "cat", "env", "seq", "ls", "wc", "touch"):
        path = shutil.which(tool)
        if path:
            os.symlink(path, bindir / tool)
    return {"PATH": str(bindir)}


def cvd_seen(tmp_path):
    return sorted(out(d).strip() for d in job_dirs(tmp_path))


def barrier_jobs(tmp_path, n):
    """n jobs that each wait until n jobs run at once, then print their GPU."""
    b = tmp_path / "barrier"
    b.mkdir()
    job_file(tmp_path, *[f"touch {b}/$HOG_JOB_INDEX; for i in $(seq 200); do "
                         f"[ $(ls {b} | wc -l) -ge {n} ] && break; sleep 0.05; done; "
                         f"echo $CUDA_VISIBLE_DEVICES"] * n)


# ------------------------------------------------------------------ hog gpus
def test_hog_gpus_lists_every_gpu_nvidia_smi_reports(tmp_path):
    r = run_hog(tmp_path, "gpus", env=fake_smi(tmp_path))
    assert r.returncode == 0, r.stderr
    for index, uuid, name, *_ in GPUS:
        assert uuid in r.stdout
    assert "NVIDIA H100 80GB HBM3" in r.stdout
    assert "0,1,2,3" in r.stdout
    assert_no_traceback(r.stdout + r.stderr)


def test_hog_gpus_shows_the_cuda_visible_devices_restriction(tmp_path):
    r = run_hog(tmp_path, "gpus", env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "2,0"})
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if "2,0" in line]
    assert lines, r.stdout
    assert "0,1,2,3" not in r.stdout.replace("CUDA_VISIBLE_DEVICES: 2,0", "")


def test_hog_gpus_without_nvidia_smi_says_so_without_a_traceback(tmp_path):
    r = run_hog(tmp_path, "gpus", env=no_smi(tmp_path))
    assert r.returncode in (0, 1)
    assert "nvidia-smi" in (r.stdout + r.stderr)
    assert_no_traceback(r.stdout + r.stderr)


# ------------------------------------------------------------------ runs without --gpus
def test_no_gpus_flag_uses_every_discovered_gpu_one_slot_each(tmp_path):
    barrier_jobs(tmp_path, 4)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", env=fake_smi(tmp_path))
    assert r.returncode == 0, r.stderr
    assert cvd_seen(tmp_path) == ["0", "1", "2", "3"]
    assert (tmp_path / "nvidia-smi.calls").exists(), "nvidia-smi was not asked"


def test_gpus_all_is_the_same_as_no_gpus_flag(tmp_path):
    barrier_jobs(tmp_path, 4)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "all", env=fake_smi(tmp_path))
    assert r.returncode == 0, r.stderr
    assert cvd_seen(tmp_path) == ["0", "1", "2", "3"]


def test_discovery_is_restricted_to_cuda_visible_devices(tmp_path):
    barrier_jobs(tmp_path, 2)
    r = run_hog(tmp_path, "--job_file", "jobs.txt",
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "3,1"})
    assert r.returncode == 0, r.stderr
    assert cvd_seen(tmp_path) == ["1", "3"]


def test_only_visible_gpus_are_used_even_with_more_jobs_than_gpus(tmp_path):
    job_file(tmp_path, *["echo $CUDA_VISIBLE_DEVICES"] * 8)
    r = run_hog(tmp_path, "--job_file", "jobs.txt",
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "2"})
    assert r.returncode == 0, r.stderr
    assert set(cvd_seen(tmp_path)) == {"2"}


def test_cuda_visible_devices_by_uuid_selects_that_gpu(tmp_path):
    uuid = GPUS[2][1]
    job_file(tmp_path, "echo $CUDA_VISIBLE_DEVICES")
    r = run_hog(tmp_path, "--job_file", "jobs.txt",
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": uuid})
    assert r.returncode == 0, r.stderr
    # the job is pinned to that one GPU, named either by its UUID or by its index
    assert out(job_dir(tmp_path, 0)).strip() in (uuid, "2")
    assert len(job_dirs(tmp_path)) == 1


def test_cuda_visible_devices_ids_that_do_not_exist_are_not_used(tmp_path):
    job_file(tmp_path, *["echo $CUDA_VISIBLE_DEVICES"] * 4)
    r = run_hog(tmp_path, "--job_file", "jobs.txt",
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "1,7"})
    assert r.returncode == 0, r.stderr
    assert set(cvd_seen(tmp_path)) == {"1"}


def test_without_nvidia_smi_cuda_visible_devices_gives_the_slots(tmp_path):
    barrier_jobs(tmp_path, 2)
    r = run_hog(tmp_path, "--job_file", "jobs.txt",
                env={**no_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "5,6"})
    assert r.returncode == 0, r.stderr
    assert cvd_seen(tmp_path) == ["5", "6"]


def test_no_gpus_flag_and_no_nvidia_smi_is_a_one_line_usage_error(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", env=no_smi(tmp_path))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--gpus" in r.stderr
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_a_failing_nvidia_smi_is_treated_as_no_gpus_found(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", env=fake_smi(tmp_path, fail=True))
    assert r.returncode == 2
    assert "--gpus" in r.stderr
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_empty_cuda_visible_devices_means_no_gpu_is_available(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt",
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 2
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_explicit_gpus_do_not_need_nvidia_smi(tmp_path):
    job_file(tmp_path, "echo $CUDA_VISIBLE_DEVICES")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "9", env=no_smi(tmp_path))
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "9\n"


# ------------------------------------------------------------------ inside an allocation
# A Slurm allocation (or any parent) hands hog CUDA_VISIBLE_DEVICES=2,3: explicit --gpus
# ids must be among its entries, and they reach the job as they are.
def test_explicit_gpus_outside_cuda_visible_devices_are_a_usage_error_naming_both(tmp_path):
    job_file(tmp_path, "echo $CUDA_VISIBLE_DEVICES")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1",
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "2,3"})
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--gpus 0,1" in r.stderr and "CUDA_VISIBLE_DEVICES=2,3" in r.stderr
    assert_no_traceback(r.stderr)
    assert job_dirs(tmp_path) == []


def test_one_gpu_outside_cuda_visible_devices_is_refused_even_beside_allowed_ones(tmp_path):
    job_file(tmp_path, "true")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "2,2,0",
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "2,3"})
    assert r.returncode == 2
    assert "GPU 0 is not among CUDA_VISIBLE_DEVICES=2,3" in r.stderr
    assert job_dirs(tmp_path) == []


def test_explicit_gpus_within_cuda_visible_devices_reach_the_job_as_given(tmp_path):
    barrier_jobs(tmp_path, 3)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "3,2,2",
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "2,3"})
    assert r.returncode == 0, r.stderr
    assert cvd_seen(tmp_path) == ["2", "2", "3"]


def test_allowed_gpus_without_nvidia_smi_are_the_literal_entries(tmp_path):
    job_file(tmp_path, "echo $CUDA_VISIBLE_DEVICES")
    env = {**no_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "5,6"}
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "6", env=env)
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "6\n"
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--fresh", env=env)
    assert r.returncode == 2
    assert "CUDA_VISIBLE_DEVICES=5,6" in r.stderr


def test_a_gpu_uuid_in_cuda_visible_devices_allows_its_index_and_its_uuid(tmp_path):
    uuid = GPUS[2][1]
    job_file(tmp_path, "echo $CUDA_VISIBLE_DEVICES")
    env = {**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": uuid}
    for spec in ("2", uuid):
        r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", spec, "--fresh", env=env)
        assert r.returncode == 0, r.stderr
        assert out(job_dir(tmp_path, 0)) == spec + "\n"
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "1", "--fresh", env=env)
    assert r.returncode == 2
    assert uuid in r.stderr


def test_gpu_uuids_given_to_gpus_pass_through_to_the_job_unchanged(tmp_path):
    uuids = [GPUS[2][1], GPUS[3][1]]
    barrier_jobs(tmp_path, 2)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", ",".join(uuids),
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "2,3"})
    assert r.returncode == 0, r.stderr
    assert cvd_seen(tmp_path) == sorted(uuids)


MIGS = ["MIG-11111111-aaaa-bbbb-cccc-000000000001", "MIG-11111111-aaaa-bbbb-cccc-000000000002"]


def test_mig_ids_in_cuda_visible_devices_are_the_slots_of_gpus_all(tmp_path):
    # nvidia-smi --query-gpu lists whole GPUs only: MIG ids are kept as they are
    barrier_jobs(tmp_path, 2)
    r = run_hog(tmp_path, "--job_file", "jobs.txt",
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": ",".join(MIGS)})
    assert r.returncode == 0, r.stderr
    assert cvd_seen(tmp_path) == MIGS


def test_mig_ids_work_as_gpus_ids_within_cuda_visible_devices(tmp_path):
    job_file(tmp_path, *["echo $CUDA_VISIBLE_DEVICES"] * 3)
    env = {**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": ",".join(MIGS)}
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", MIGS[1], env=env)
    assert r.returncode == 0, r.stderr
    assert set(cvd_seen(tmp_path)) == {MIGS[1]}
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", "--fresh", env=env)
    assert r.returncode == 2
    assert MIGS[0] in r.stderr


def test_gpus_all_inside_an_allocation_is_exactly_its_gpus(tmp_path):
    barrier_jobs(tmp_path, 2)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "all",
                env={**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "2,3"})
    assert r.returncode == 0, r.stderr
    assert cvd_seen(tmp_path) == ["2", "3"]


def test_explicit_gpus_without_cuda_visible_devices_are_labels(tmp_path):
    job_file(tmp_path, "echo $CUDA_VISIBLE_DEVICES")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "7", env=fake_smi(tmp_path))
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "7\n"


def test_hog_gpus_cannot_move_a_live_runner_outside_its_cuda_visible_devices(tmp_path):
    job_file(tmp_path, "true")
    env = {**fake_smi(tmp_path), "CUDA_VISIBLE_DEVICES": "2,3"}
    runner = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "2", "--keep_alive",
                       "--display", "plain", env=env)
    wait_for(lambda: runner_rows(tmp_path / "output"), timeout=20, what="the runner's row")
    assert run_hog(tmp_path, "gpus", "output", "0").returncode == 0
    wait_for(lambda: "keeping the current slots" in runner.stderr, timeout=10,
             what="the runner to refuse GPU 0")
    assert "CUDA_VISIBLE_DEVICES=2,3" in runner.stderr
    assert run_hog(tmp_path, "gpus", "output", "3,2").returncode == 0
    wait_for(lambda: sorted(runner_rows(tmp_path / "output")[0]["gpus"].split(",")) == ["2", "3"],
             timeout=10,
             what="the runner to take --gpus 3,2")
    assert run_hog(tmp_path, "stop", "output").returncode == 0
    assert runner.proc.wait(30) == 0
