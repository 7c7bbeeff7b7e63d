"""Sources stream: the first job starts before a long source has been read, and hog
takes jobs only as slots free up, so an endless source neither hangs it nor grows it."""
import os
import signal
import subprocess
import textwrap
import time

import pytest

from .harness import (
    hog_env,
    job_dir,
    job_dirs,
    marker,
    markers,
    out,
    run_hog,
    start_hog,
    wait_for,
    write,
)

pytestmark = pytest.mark.timeout(90)


def test_first_job_of_a_100000_line_file_starts_at_once(tmp_path):
    first = tmp_path / "first-started"
    lines = [f"touch {first}; sleep 30"] + [f"echo {i}" for i in range(1, 100_000)]
    write(tmp_path / "jobs.txt", "\n".join(lines) + "\n")
    t0 = time.monotonic()
    hog = start_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,1")
    wait_for(first.exists, 20, interval=0.005, what="job 0 to start")
    to_first = time.monotonic() - t0
    hog.signal(signal.SIGTERM)
    assert hog.wait(30) == 143
    n = len(job_dirs(tmp_path))
    assert n < 20_000, f"{n} job folders: hog ran through the file before stopping"
    assert to_first < 5, f"first job started {to_first:.2f}s after hog"
    assert markers(job_dir(tmp_path, 0)) == ["FAILURE"]


def test_a_job_file_that_is_a_pipe_streams_jobs_as_they_are_written(tmp_path):
    """`hog --job_file <(generate)`: job 0 must run before the writer has finished,
    and every line must run exactly once."""
    fifo = tmp_path / "jobs.fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(
        ["bash", "-c", textwrap.dedent(f"""\
            exec > {fifo}
            echo 'echo line-0'
            echo 'echo line-1'
            for i in $(seq 200); do [ -e output/job_0/SUCCESS ] && break; sleep 0.05; done
            [ -e output/job_0/SUCCESS ] && echo 'echo written-after-job-0-ended'
            echo 'echo line-3'
            """)],
        cwd=tmp_path, env=hog_env(), start_new_session=True)
    try:
        r = run_hog(tmp_path, "--job_file", str(fifo), "--gpus", "0", timeout=40)
    finally:
        try:
            writer.wait(5)
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.wait()
    assert r.returncode == 0, r.stderr
    assert [out(d) for d in job_dirs(tmp_path)] == \
        ["line-0\n", "line-1\n", "written-after-job-0-ended\n", "line-3\n"]


def test_yielder_items_are_taken_as_they_are_yielded(tmp_path):
    """The yielder waits for job 0 to have run before yielding job 1: only a streaming
    runner finishes this sweep."""
    write(tmp_path / "sweep.py", textwrap.dedent("""\
        import os, time

        def yielder():
            yield "echo zero"
            for _ in range(600):
                if os.path.exists("output/job_0/SUCCESS"):
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("job 0 did not run while the yielder waited")
            yield "echo one"
        """))
    r = run_hog(tmp_path, "--job_yielder", "sweep.py", "--gpus", "0", timeout=60)
    assert r.returncode == 0, r.stderr
    assert [out(d) for d in job_dirs(tmp_path)] == ["zero\n", "one\n"]


def test_an_endless_yielder_is_read_only_as_fast_as_slots_free_up(tmp_path):
    counter = tmp_path / "pulled"
    write(tmp_path / "sweep.py", textwrap.dedent(f"""\
        import itertools

        def yielder():
            for i in itertools.count():
                with open({str(counter)!r}, "w") as f:
                    f.write(str(i))
                yield "sleep 30" if i == 0 else "echo quick"
        """))
    hog = start_hog(tmp_path, "--job_yielder", "sweep.py", "--gpus", "0")
    wait_for(lambda: (job_dir(tmp_path, 0) / "INFO").exists(), 20, what="job 0 to start")

    def pulled() -> int:
        return int(counter.read_text() or 0)

    seen = [pulled()]

    def settled() -> bool:      # read ahead as far as hog goes, then no further
        time.sleep(0.5)
        seen.append(pulled())
        return seen[-1] == seen[-2] > 0

    wait_for(settled, 20, what="the yielder to stop being read while the only slot is busy")
    assert seen[-1] < 3000, f"the yielder was drained ahead of the slots ({seen[-1]} items)"
    time.sleep(1.5)
    assert pulled() == seen[-1], \
        f"with the only slot busy the yielder was still read ({seen[-1]} -> {pulled()})"
    assert hog.alive()
    hog.signal(signal.SIGTERM)
    assert hog.wait(30) == 143
    assert marker(job_dir(tmp_path, 0)) == "FAILURE"
    assert len(job_dirs(tmp_path)) == 1


def test_a_long_file_runs_every_job_exactly_once(tmp_path):
    n = 300
    write(tmp_path / "jobs.txt", "".join(f"echo {i}\n" for i in range(n)))
    r = run_hog(tmp_path, "--job_file", "jobs.txt", "--gpus", "0,0,1,1", "--quiet", timeout=90)
    assert r.returncode == 0, r.stderr
    dirs = job_dirs(tmp_path)
    assert len(dirs) == n
    assert all(out(d) == f"{i}\n" for i, d in enumerate(dirs))
    assert all(markers(d) == ["SUCCESS"] for d in dirs)
