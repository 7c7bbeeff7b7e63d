"""hog's own writes refused: a real small tmpfs that fills, a read-only mount over the
output directory, and the output directory removed while jobs run.

What must hold every time: no traceback from any hog process; the jobs that run are
never killed by hog (their own writes failing is their business: they end by
themselves); one line says what is wrong; nothing new starts while hog cannot write;
once the disk takes writes again the sweep carries on and ends with every job run
exactly once (a ledger outside the output directory) and one marker per folder.
"""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import List

import pytest
from multiprocess.connection import wait

from hog.engine import outcomes, writable
from hog.engine.control import TICK_S
from hog.engine.progress import EXIT_OK
from hog.messages import Dispatch
from hog.model import Job, Status
from hog.sources import SourceSpec
from hog.state.store import HEARTBEAT_S, Store

from .harness import MARKERS, info, job_dirs, job_file, wait_for
from .test_engine import Engines, step_until, store_counts

CANNOT = "cannot write to disk/out"   # --output_dir disk/out, relative to hq.tmp


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs at ``tmp_path/disk``, unmounted (with anything mounted on it) after
    the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    r = _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk))
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield disk
    finally:
        for target in (disk / "out", disk):
            if os.path.ismount(target):
                subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _jobs(folder: Path, ledger: Path, n: int, body: str) -> Path:
    """``n`` jobs, each running ``body`` then appending its name to ``ledger``."""
    return job_file(folder, *[f"{body}; echo $HOG_JOB_NAME >> {ledger}" for _ in range(n)])


def _fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with one file; returns it (unlink it to free)."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, b"x" * 65536):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return ballast


def tick_to_the_end(runner, clock, seconds: float) -> None:
    """Step from tick to tick (waiting on the runner's pipes between turns) until the
    run is finished; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not runner.step(clock.advance(TICK_S), wait(runner.waitables(), 0.05)):
        assert time.monotonic() < deadline, (runner.st.display.messages, runner.st.held)


def _entries(folder: Path) -> List[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def _ledger(ledger: Path) -> List[str]:
    return ledger.read_text().split() if ledger.exists() else []


def _starts(hog) -> int:
    return hog.stdout.count("start job_")


def _assert_clean(hog, ledger: Path, out: Path, n: int) -> None:
    """Every job ran once, each folder holds one marker (SUCCESS), INFO says it exited
    by itself with 0; no traceback, and no temporary left behind."""
    assert "Traceback" not in hog.output, hog.output
    assert sorted(_ledger(ledger)) == sorted(f"job_{i}" for i in range(n)), hog.output
    folders = job_dirs(out.parent, out.name)
    assert len(folders) == n
    for folder in folders:
        markers = [m for m in MARKERS if (folder / m).exists()]
        assert markers == ["SUCCESS"], (folder, hog.output)
        data = info(folder)
        assert (data["status"], data["exit_code"], data["signal"]) == ("succeeded", 0, None)
    left = [p for p in out.rglob("*") if ".tmp" in p.name or ".hog-probe" in p.name]
    assert not left, left


def test_a_disk_that_fills_pauses_the_sweep_keeps_its_jobs_and_carries_on_once_freed(
        hq, small_disk):
    ledger, out = hq.tmp / "ledger", small_disk / "out"
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"x" * (1400 * 1024))      # ~500 KiB left: the first jobs fill it
    # a job's own write failing is its business: this one carries on (|| true); only the
    # first two write much (so the disk, once freed, stays so: the store's WAL grows too)
    jobs = _jobs(hq.tmp, ledger, 6, 'if [ "${HOG_JOB_NAME#job_}" -lt 2 ]; then '
                 '{ yes | head -c 300000 || true; }; fi; sleep 0.5')
    hog = hq.start("--job_file", jobs, "--output_dir", "disk/out", "--gpus", "0,0")
    hog.wait_output(CANNOT, timeout=10)
    wait_for(lambda: not hq.job_pids(), 5, what="the running jobs to end by themselves")
    started = _starts(hog)
    time.sleep(1.0)                                 # full: nothing new starts
    assert _starts(hog) == started and hog.alive(), hog.output
    assert len(_ledger(ledger)) == started          # ... and those that ran were not killed
    ballast.unlink()
    rc = hog.wait(20)
    assert rc == 0, hog.output
    assert hog.stderr.count(CANNOT) == 1, hog.stderr
    assert "can be written to again; carrying on" in hog.stderr
    _assert_clean(hog, ledger, out, 6)


def test_a_read_only_output_directory_pauses_the_sweep_until_it_is_writable_again(
        hq, small_disk):
    """The kernel refuses ``mount -o remount,ro`` of a file system while files on it are
    open for writing (hog's store, the jobs' output), so a read-only bind mount over the
    output directory is laid on it mid-run: every file hog opens there is refused
    (EROFS); writes through files already open go on."""
    ledger, out = hq.tmp / "ledger", small_disk / "out"
    jobs = _jobs(hq.tmp, ledger, 6, "sleep 0.7")
    hog = hq.start("--job_file", jobs, "--output_dir", "disk/out", "--gpus", "0,0")
    wait_for(lambda: len(hq.job_pids()) >= 2, 10, what="two jobs running")
    # ... and the folders of the two handed to follow them made (state.staging): a file
    # made through the new mount while it is laid would keep it from turning read-only
    wait_for(lambda: len(_entries(out / ".hog" / "next")) >= 2, 10, what="two folders made")
    for args in (["--bind", str(out), str(out)], ["-o", "remount,ro,bind", str(out)]):
        r = _mount(*args)
        assert r.returncode == 0, r.stderr
    hog.wait_output(CANNOT, timeout=10)
    wait_for(lambda: not hq.job_pids(), 5, what="the running jobs to end by themselves")
    started = _starts(hog)
    time.sleep(1.0)
    assert _starts(hog) == started and hog.alive(), hog.output
    assert len(_ledger(ledger)) == started
    r = _mount("-o", "remount,rw,bind", str(out))
    assert r.returncode == 0, r.stderr
    rc = hog.wait(20)
    assert rc == 0, hog.output
    assert hog.stderr.count(CANNOT) == 1, hog.stderr
    _assert_clean(hog, ledger, out, 6)


def test_the_output_directory_removed_mid_run_stops_new_jobs_keeps_running_ones_and_fails(
        hq):
    ledger, out = hq.tmp / "ledger", hq.tmp / "out"
    jobs = _jobs(hq.tmp, ledger, 6, "sleep 1")
    hog = hq.start("--job_file", jobs, "--output_dir", out, "--gpus", "0,0")
    # (the runner says a job started once it hears it: after the job's process exists)
    wait_for(lambda: len(hq.job_pids()) >= 2 and _starts(hog) >= 2, 10,
             what="two jobs running")
    running = _starts(hog)
    shutil.rmtree(out)
    rc = hog.wait(15)
    assert rc == 1, hog.output
    assert "Traceback" not in hog.output, hog.output
    assert hog.stderr.count("was removed while running:") == 1, hog.stderr
    # the jobs that ran were not killed: they ended by themselves; none started after
    assert len(_ledger(ledger)) == running == _starts(hog), hog.output
    assert not out.exists()           # not recreated as a fresh, empty sweep
    hq.wait_no_processes()


def test_a_second_ctrl_c_while_the_disk_is_full_records_what_it_can_and_exits(
        hq, small_disk):
    ledger, out = hq.tmp / "ledger", small_disk / "out"
    (small_disk / "ballast").write_bytes(b"x" * (1400 * 1024))
    jobs = _jobs(hq.tmp, ledger, 4, "{ yes | head -c 600000 || true; }; sleep 30")
    hog = hq.start("--job_file", jobs, "--output_dir", "disk/out", "--gpus", "0,0")
    hog.wait_output(CANNOT, timeout=10)
    assert hq.job_pids()                        # the jobs go on
    hog.signal(signal.SIGINT)
    hog.wait_output("Ctrl-C again", timeout=5)
    hog.signal(signal.SIGINT)
    rc = hog.wait(15)
    assert rc == 130, hog.output
    assert "Traceback" not in hog.output, hog.output
    assert "stopped by a second Ctrl-C" in hog.output
    hq.wait_no_processes()
    for folder in job_dirs(out.parent, out.name):          # never two markers
        assert sum((folder / m).exists() for m in MARKERS) <= 1, folder
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_a_commit_the_disk_refuses_loses_no_outcome_and_a_later_batch_applies_it(small_disk):
    """The store's side, in-process: the turn's writes are kept when SQLite says
    "database or disk is full", claims are not made, and once space returns the next
    batch commits what was kept, in order."""
    store = Store(str(small_disk / "out" / ".hog"))
    try:
        store.ingest([Job(index=i, command=f"echo {i}") for i in range(3)], resume=False)
        runner = store.register_runner("0")
        for i in (0, 1):
            assert store.claim(i, 0, runner, i, "0") == 1
        ballast = _fill(small_disk)               # to the last byte
        with store.batch():
            store.ended(0, Status.SUCCEEDED, 0, None, 1.0, 2.0)
            store.ended(1, Status.FAILED, 3, None, 1.0, 2.0, requeue=True)
            store.set_meta("filler", "y" * 200_000)    # more than the WAL holds: refused
        assert store.write_error and "full" in store.write_error
        assert len(store.unsaved) == 3
        with store.batch():                            # still refused (and not retried yet)
            assert store.claim(2, 0, runner, 0, "0") is None
        assert store.counts().get("running") == 2      # nothing half-applied
        ballast.unlink()
        store.retry_now()
        with store.batch():
            pass
        assert store.write_error is None and not store.unsaved
        statuses = {r.id: r.status for r in store.queued(10)}
        assert statuses == {1: "queued", 2: "queued"}
        assert store.counts().get("succeeded") == 1
    finally:
        store.close()


def test_stepped_the_runner_starts_nothing_while_a_slot_cannot_write_and_carries_on_after(
        small_disk, tmp_path):
    """In-process, stepped with its own clock: the slot's final write is refused, the
    runner hears it (one message), claims nothing on its ticks, and once the disk is
    freed the job is recorded and the next ones run."""
    go = tmp_path / "go"
    engines = Engines(str(small_disk / "out"))
    try:
        runner, clock = engines.make([f"while [ ! -e {go} ]; do sleep 0.02; done", "true",
                                      "true"])
        st = runner.st
        step_until(runner, clock, lambda: st.pids)          # the first job runs
        ballast = _fill(small_disk)
        go.touch()                                          # it ends; its INFO is refused
        step_until(runner, clock, lambda: st.guard.blocked)
        for _ in range(4):                                  # ticks: nothing new is claimed
            runner.step(clock.advance(TICK_S), wait(runner.waitables(), 0.1))
            assert [d.job.index for d in st.running.values()] == [0]
        runner.step(clock.advance(HEARTBEAT_S))             # the heartbeat's commit: refused,
        assert st.store.write_error and st.store.unsaved    # ... and kept
        blocked = [m for m in st.display.messages if "cannot write" in m]
        assert len(blocked) == 1, st.display.messages
        ballast.unlink()
        tick_to_the_end(runner, clock, 10)
        assert not st.store.unsaved                         # applied before the end
        assert engines.finish(runner) == EXIT_OK
        assert store_counts(runner) == {"succeeded": 3}
        assert any("carrying on" in m for m in st.display.messages)
    finally:
        for runner in list(engines.live):
            engines.finish(runner)


def test_a_folder_the_runner_writes_while_the_disk_is_full_is_written_once_it_is_freed(
        small_disk):
    """The runner's own folder writes (jobs skipped, unschedulable, of a lost slot): the
    outcome is recorded at once, the folder once the tick finds the disk writable."""
    engines = Engines(str(small_disk / "out"))
    try:
        runner, clock = engines.make(["true"])
        st = runner.st
        assert step_until(runner, clock)
        ballast = _fill(small_disk)
        d = Dispatch(job=Job(index=7, command="true"), slot=-1, gpu_ids=(), name="job_7")
        outcome = outcomes.write_folder_without_consumer(st, d, Status.UNSCHEDULABLE, 1.0,
                                                         1.0, None, "too big")
        assert outcome.status is Status.UNSCHEDULABLE and st.guard.blocked
        folder = small_disk / "out" / "job_7"
        assert not (folder / "FAILURE").exists() and len(st.folders_due) == 1
        writable.tick(st)                                   # still full: still due
        assert st.guard.blocked and st.folders_due
        ballast.unlink()
        writable.tick(st)
        assert not st.guard.blocked and not st.folders_due
        assert [m for m in MARKERS if (folder / m).exists()] == ["FAILURE"]
        assert info(folder)["status"] == "unschedulable"
    finally:
        for runner in list(engines.live):
            engines.finish(runner)


def test_stepped_jobs_read_while_the_disk_is_full_are_stored_once_it_frees(
        small_disk, tmp_path):
    """The source's next jobs reach the runner while the disk is full (filled by a job's
    own output), so storing them is the first write refused: they are held, stored on a
    later turn once the disk takes writes, and the sweep carries on. (Held jobs kept the
    runner from ever carrying on before.)"""
    go = tmp_path / "go"

    def source():
        yield "true"
        while not go.exists():          # the rest only once the disk is full
            time.sleep(0.01)
        yield from ["true"] * 5

    engines = Engines(str(small_disk / "out"))
    try:
        runner, clock = engines.make([], source=SourceSpec("python", "slow", items=source()))
        st = runner.st
        step_until(runner, clock, lambda: st.progress.succeeded == 1)
        ballast = _fill(small_disk)
        go.touch()
        step_until(runner, clock, lambda: st.held is not None)   # refused, held
        assert st.guard.blocked
        ballast.unlink()
        tick_to_the_end(runner, clock, 20)
        assert engines.finish(runner) == EXIT_OK
        assert store_counts(runner) == {"succeeded": 6}
        assert any("carrying on" in m for m in st.display.messages)
    finally:
        for runner in list(engines.live):
            engines.finish(runner)
