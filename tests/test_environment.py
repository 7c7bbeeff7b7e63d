"""The environment a job sees: its GPU pinning, hog's HOG_* variables, everything
else inherited, and the working directory hog was started in."""
import os

from .harness import info, job_dir, job_dirs, job_file, out, run_hog

SHOW = 'echo "CVD=[${CUDA_VISIBLE_DEVICES-unset}] ORDER=[${CUDA_DEVICE_ORDER-unset}]"'


def parse(text):
    return dict(item.split("=", 1) for item in text.split())


def test_each_job_sees_only_its_slot_gpu(tmp_path):
    job_file(tmp_path, *['echo "$CUDA_VISIBLE_DEVICES $HOG_SLOT"; sleep 0.2'] * 6)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "4,0,7")
    assert r.returncode == 0, r.stderr
    slot_gpu = {"0": "4", "1": "0", "2": "7"}
    seen = set()
    for d in job_dirs(tmp_path):
        gpu, slot = out(d).split()
        assert slot_gpu[slot] == gpu, f"{d.name}: slot {slot} saw GPU {gpu}"
        assert info(d)["gpus"] == [gpu]
        assert info(d)["slot"] == int(slot)
        seen.add(gpu)
    assert seen == {"4", "0", "7"}


def test_cuda_device_order_defaults_to_pci_bus_id(tmp_path):
    job_file(tmp_path, SHOW)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "2")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "CVD=[2] ORDER=[PCI_BUS_ID]\n"


def test_cuda_device_order_already_set_is_kept(tmp_path):
    job_file(tmp_path, SHOW)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "2",
                env={"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "CVD=[2] ORDER=[FASTEST_FIRST]\n"


def test_hogs_own_cuda_visible_devices_is_replaced_by_the_slot_gpu(tmp_path):
    job_file(tmp_path, SHOW)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "1",
                env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)).startswith("CVD=[1] ")


def test_a_job_needing_no_gpu_sees_an_empty_cuda_visible_devices(tmp_path):
    job_file(tmp_path, SHOW + "  # hog: gpus=0")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1",
                env={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)).startswith("CVD=[] ")
    assert info(job_dir(tmp_path, 0))["gpus"] == []


def test_a_two_gpu_job_sees_two_distinct_ids(tmp_path):
    job_file(tmp_path, 'echo "$CUDA_VISIBLE_DEVICES"  # hog: gpus=2')
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,1")
    assert r.returncode == 0, r.stderr
    ids = out(job_dir(tmp_path, 0)).strip().split(",")
    assert sorted(ids) == ["0", "1"]
    assert sorted(info(job_dir(tmp_path, 0))["gpus"]) == ["0", "1"]


def test_hog_job_variables(tmp_path):
    job_file(tmp_path,
             'echo "INDEX=$HOG_JOB_INDEX NAME=$HOG_JOB_NAME DIR=$HOG_JOB_DIR '
             'SLOT=$HOG_SLOT ATTEMPT=$HOG_ATTEMPT"',
             'echo "INDEX=$HOG_JOB_INDEX NAME=$HOG_JOB_NAME DIR=$HOG_JOB_DIR '
             'SLOT=$HOG_SLOT ATTEMPT=$HOG_ATTEMPT"  # hog: name=named')
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "5")
    assert r.returncode == 0, r.stderr
    for i, name in enumerate(["job_0", "named"]):
        d = job_dir(tmp_path, i)
        env = parse(out(d))
        assert env["INDEX"] == str(i)
        assert env["NAME"] == name
        assert os.path.isabs(env["DIR"]), env["DIR"]
        assert os.path.samefile(env["DIR"], d)
        assert env["SLOT"] == "0"
        assert env["ATTEMPT"] == "1"


def test_hog_job_dir_lets_a_job_write_files_into_its_folder(tmp_path):
    job_file(tmp_path, 'cd /tmp && echo result > "$HOG_JOB_DIR/metrics.txt"')
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert (job_dir(tmp_path, 0) / "metrics.txt").read_text() == "result\n"


def test_hog_slot_counts_slots_from_0(tmp_path):
    barrier = tmp_path / "b"
    barrier.mkdir()
    # each job waits until all three run at once, so each must be on its own slot
    job_file(tmp_path, *[f'echo $HOG_SLOT; touch {barrier}/$HOG_JOB_INDEX; '
                         f'for i in $(seq 200); do [ $(ls {barrier} | wc -l) -ge 3 ] && exit 0; '
                         f'sleep 0.05; done; exit 1'] * 3)
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,1")
    assert r.returncode == 0, r.stderr
    assert sorted(out(d).strip() for d in job_dirs(tmp_path)) == ["0", "1", "2"]


def test_everything_else_is_inherited(tmp_path):
    job_file(tmp_path, 'echo "$MY_SETTING|$PATH_LIKE|$HOME"')
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0",
                env={"MY_SETTING": "a value with spaces", "PATH_LIKE": "/x:/y"})
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == f"a value with spaces|/x:/y|{os.environ.get('HOME', '')}\n"


def test_a_job_does_not_see_hogs_python_internals(tmp_path):
    # the job is plain bash: Python's ignored SIGPIPE must not leak into it
    job_file(tmp_path, "yes | head -n 2; echo ${PIPESTATUS[0]}")
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0", timeout=20)
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == "y\ny\n141\n"


def test_jobs_run_in_the_directory_hog_was_started_in(tmp_path):
    work = tmp_path / "work dir"
    work.mkdir()
    job_file(work, "pwd; echo made > relative-file.txt")
    r = run_hog(work, "--job_file", "jobs.txt", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(work, 0)).strip() == str(work)
    assert (work / "relative-file.txt").read_text() == "made\n"


def test_a_yielder_job_can_set_its_environment_and_directory(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (tmp_path / "sweep.py").write_text(
        "def yielder():\n"
        f"    yield {{'cmd': 'pwd; echo $LR', 'env': {{'LR': '0.1'}}, 'cwd': {str(sub)!r}}}\n"
        "    yield 'pwd; echo ${LR-unset}'\n")
    r = run_hog(tmp_path, "--job_yielder", "sweep.py", "--gpus", "0")
    assert r.returncode == 0, r.stderr
    assert out(job_dir(tmp_path, 0)) == f"{sub}\n0.1\n"
    assert out(job_dir(tmp_path, 1)) == f"{tmp_path}\nunset\n"


def test_a_job_whose_directory_does_not_exist_fails_with_the_reason_in_its_err(tmp_path):
    missing = tmp_path / "no-such-dir"
    (tmp_path / "sweep.py").write_text(
        "def yielder():\n"
        f"    yield {{'cmd': 'echo never', 'cwd': {str(missing)!r}}}\n"
        "    yield 'echo next'\n")
    r = run_hog(tmp_path, "--job_yielder", "sweep.py", "--gpus", "0")
    assert r.returncode == 1, r.stderr
    d = job_dir(tmp_path, 0)
    assert (d / "FAILURE").exists() and not (d / "SUCCESS").exists()
    assert info(d)["status"] == "failed"
    assert "no-such-dir" in (d / "job_0.ERR").read_text()
    assert out(d) == ""
    assert out(job_dir(tmp_path, 1)) == "next\n"
