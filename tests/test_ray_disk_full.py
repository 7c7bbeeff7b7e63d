"""hog --backend ray with its output directory on a real small tmpfs that fills while
the jobs run: the bridge (hog's Ray driver, which writes the job folders from what the
Ray tasks stream back) never dies with a traceback, kills no job for its own write
failing, tells the runner (one "cannot write" line), keeps the output and tries again
with a backoff; once space is freed every job is recorded once, with one marker and
all of its output. Needs root (the tmpfs, the Ray tests' network namespace)."""
import time

from .harness import MARKERS, info, job_dirs, job_file, wait_for
from .test_disk_full import _fill, _ledger, small_disk  # noqa: F401 - the fixture
from .test_ray_backend import ray_hog  # noqa: F401 - the fixture

OUT_BYTES = 20000       # each job's output once released: more than a full disk takes


def test_a_disk_that_fills_under_ray_jobs_loses_no_job_and_no_output(
        ray_hog, small_disk, tmp_path):  # noqa: F811 - the fixtures imported above
    ledger, release, out = tmp_path / "ledger", tmp_path / "release", small_disk / "out"
    n = 3
    jobs = job_file(tmp_path, *[
        f"echo started; while [ ! -e {release} ]; do sleep 0.05; done; "
        f"yes | head -c {OUT_BYTES}; echo $HOG_JOB_NAME >> {ledger}; echo end"] * n)
    hog = ray_hog.start("--job_file", jobs, "--output_dir", "disk/out")
    wait_for(lambda: len(job_dirs(small_disk, "out")) == n and all(
        (f / "INFO").exists() and info(f).get("status") == "running"
        for f in job_dirs(small_disk, "out")), timeout=60, what="every job to start on Ray")
    ballast = _fill(small_disk)
    release.touch()
    wait_for(lambda: len(_ledger(ledger)) == n, timeout=30,
             what="the jobs to end by themselves while the disk is full")
    wait_for(lambda: "cannot write to disk/out" in hog.log.read_text(), timeout=30,
             what="the runner to say it cannot write")
    time.sleep(0.5)                     # still full: the bridge retries meanwhile
    assert hog.poll() is None, hog.log.read_text()
    t0 = time.monotonic()
    ballast.unlink()
    rc = hog.wait(60)
    freed_to_end = time.monotonic() - t0
    text = hog.log.read_text()
    ray_log = (out / ".hog" / "ray.log").read_text(errors="replace")
    assert rc == 0, text + ray_log
    assert "Traceback" not in text and "Traceback" not in ray_log, text + ray_log
    assert text.count("cannot write to disk/out") == 1, text
    assert sorted(_ledger(ledger)) == sorted(f"job_{i}" for i in range(n))
    folders = job_dirs(small_disk, "out")
    assert len(folders) == n
    for folder in folders:
        assert [m for m in MARKERS if (folder / m).exists()] == ["SUCCESS"], (folder, text)
        data = info(folder)
        assert (data["status"], data["exit_code"], data["attempt"]) == ("succeeded", 0, 1)
        assert (folder / f"{folder.name}.OUT").read_text() == \
            "started\n" + ("y\n" * OUT_BYTES)[:OUT_BYTES] + "end\n"
    assert freed_to_end < 10, freed_to_end
