"""A job that ran out of GPU memory beside another hog job on its GPU runs again once,
alone on a GPU, without using up a retry (engine/reruns.py, state/oom.py)."""
from hog.state.files import from_iso
from hog.state.oom import err_tail, oom_error
from tests.harness import info, job_dir, job_dirs, job_file, marker, run_hog

OOM_LINES = [
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; "
    "79.15 GiB total capacity)",
    "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB",
    "2024-05-01 W tensorflow: RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
    "1073741824 bytes.",
    "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory allocating",
    "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "RuntimeError: cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "RuntimeError: CUDA error: out of memory",
]


def test_gpu_out_of_memory_errors_of_the_common_frameworks_are_recognised():
    for line in OOM_LINES:
        assert oom_error(f"Traceback (most recent call last):\n  ...\n{line}\n") == line


def test_other_errors_are_not_taken_for_out_of_memory():
    for text in ("ValueError: bad learning rate", "MemoryError", "Killed",
                 "RuntimeError: CUDA error: device-side assert triggered", ""):
        assert oom_error(text) is None


def test_only_the_end_of_a_long_stderr_is_read(tmp_path):
    path = tmp_path / "job.ERR"
    path.write_text("torch.OutOfMemoryError: CUDA out of memory\n" + "x" * 100_000 + "\n")
    assert oom_error(err_tail(str(path))) is None
    assert oom_error(err_tail(str(path), 200_000)) is not None
    assert err_tail(str(tmp_path / "missing")) == ""


def oom_job(tmp_path, kind: str = "oom") -> str:
    """Fails once (a ledger file says so) with ``kind`` on stderr; then records where it
    ran and succeeds."""
    once = tmp_path / "failed-once"
    text = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" \
        if kind == "oom" else "ValueError: something else went wrong"
    return (f'if [ ! -e {once} ]; then touch {once}; sleep 0.1; echo "{text}" >&2; exit 1; fi; '
            f'echo "$CUDA_VISIBLE_DEVICES" > {tmp_path}/rerun-gpu; sleep 0.3')


def sweep(tmp_path, kind: str = "oom", *options: str):
    # placement on 0,0,1: job_0 on GPU 0, job_1 on GPU 1, job_2 beside job_0 on GPU 0
    job_file(tmp_path, "sleep 1.5", "sleep 1.5", oom_job(tmp_path, kind), "sleep 0.3",
             "sleep 0.3")
    return run_hog(tmp_path, "--job-file", "jobs.txt", "--gpus", "0,0,1",
                   "--display", "plain", *options)


def spans(folder_info: dict):
    return from_iso(folder_info["started"]), from_iso(folder_info["ended"])


def test_an_oom_beside_another_job_runs_again_alone_without_using_a_retry(tmp_path):
    r = sweep(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    folder = job_dir(tmp_path, 2)
    assert marker(folder) == "SUCCESS"
    now = info(folder)
    assert now["attempt"] == 2 and now["oom_retry"] is True     # retries: 0, yet it ran
    assert now["rerun"].startswith("rerun: out of GPU memory on GPU 0")
    assert (folder / "INFO.1").exists()
    gpu = (tmp_path / "rerun-gpu").read_text().strip()
    assert now["gpus"] == [gpu]
    start, end = spans(now)
    for other in job_dirs(tmp_path):
        if other == folder:
            continue
        o = info(other)
        s, e = spans(o)
        assert not (o["gpus"] == [gpu] and s < end and e > start), \
            f"{other.name} ran on GPU {gpu} beside the rerun"
    assert "out of GPU memory" in r.stdout + r.stderr
    report = run_hog(tmp_path, "report", "output")
    assert report.returncode == 0, report.stderr
    assert "out of GPU memory" in (tmp_path / "output" / "report.html").read_text()


def test_with_no_oom_retry_an_oom_failure_is_a_failure(tmp_path):
    r = sweep(tmp_path, "oom", "--no-oom-retry")
    assert r.returncode == 1
    folder = job_dir(tmp_path, 2)
    assert marker(folder) == "FAILURE" and info(folder)["attempt"] == 1
    assert "rerun" not in info(folder)


def test_a_failure_that_is_not_out_of_memory_uses_the_jobs_retries_as_before(tmp_path):
    r = sweep(tmp_path, "other")
    assert r.returncode == 1
    folder = job_dir(tmp_path, 2)
    assert marker(folder) == "FAILURE" and info(folder)["attempt"] == 1


def test_an_attempt_placed_alone_waits_for_an_empty_gpu_and_keeps_it_to_itself():
    from hog.backends.scheduler import Capacity, Scheduler
    from hog.model import Job, Slot
    s = Scheduler(Capacity([Slot(0, "0"), Slot(1, "0"), Slot(2, "1"), Slot(3, "1")],
                           cpu_slots=0))
    first = s.schedule([Job(index=0, command="x")])
    assert first[0].gpu_ids == ("0",)
    s.want_alone(1)
    placed = s.schedule([Job(index=1, command="x"), Job(index=2, command="x"),
                         Job(index=3, command="x")])
    by_job = {p.job_id: p.gpu_ids for p in placed}
    assert by_job[1] == ("1",)                  # GPU 0 has a job: GPU 1, empty
    assert by_job.get(2) == ("0",) and 3 not in by_job      # nothing beside job 1
    s.release(1)
    assert [p.gpu_ids for p in s.schedule([Job(index=3, command="x")])] == [("1",)]
