#!/usr/bin/env python3
"""What ``hog report`` costs on a large sweep: a synthetic finished sweep of N jobs
(default 100,000) is written through hog's own store (one job after another on each
of 8 slots, one in 25 failed with a stderr file), then ``hog report`` is run a few
times; prints the wall time (min / median / max), the CPU time and the page's size.

    python3 benchmarks/bench_report.py                  # 100,000 jobs, 3 reps
    python3 benchmarks/bench_report.py --n 20000 --reps 5
    python3 benchmarks/bench_report.py --keep /tmp/big  # keep (and reuse) the sweep

Standard library only, Linux.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hog.model import Job, Status  # noqa: E402  (after the checkout is on the path)
from hog.state.jobdir import Layout  # noqa: E402
from hog.state.store import Store  # noqa: E402


def synthetic_sweep(root: Path, n: int, slots: str = "0,0,1,1,2,2,3,3",
                    fail_every: int = 25) -> Dict[str, int]:
    """A real store (through hog's own Store) holding ``n`` finished jobs on ``slots``,
    one in ``fail_every`` failed with a stderr file; times are made up, one job after
    another on each slot. Returns the counts per status. (The report's tests use it too.)"""
    layout = Layout(str(root))
    layout.prepare_root()
    store = Store(layout.state_dir)
    with store.transaction():
        store.set_meta("prefix", "job_")
        runner = store.register_runner(slots)
    store.ingest([Job(index=i, command=f"python train.py --seed {i}", name=f"seed-{i}")
                  for i in range(n)], resume=False)
    gpus = slots.split(",")
    free = [time.time()] * len(gpus)       # from the runner's start on
    counts = {"succeeded": 0, "failed": 0}
    with store.transaction():
        for i in range(n):
            slot = min(range(len(gpus)), key=free.__getitem__)
            start, end = free[slot] + 0.05, free[slot] + 0.05 + 5 + (i * 7919 % 50)
            free[slot] = end
            store.claim(i, 0, runner, slot, gpus[slot])
            failed = i % fail_every == 3
            store.ended(i, Status.FAILED if failed else Status.SUCCEEDED, int(failed), None,
                        start, end)
            counts["failed" if failed else "succeeded"] += 1
            if failed:
                os.makedirs(layout.folder(i), exist_ok=True)
                Path(layout.err_path(i)).write_text(f"RuntimeError: diverged at step {i}\n")
    store.retire_runner(runner)
    store.close()
    return counts


def time_report(root: Path) -> tuple:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "hog", "report", str(root)], cwd=str(ROOT),
                       capture_output=True, text=True)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"hog report failed: {r.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, (root / "report.html").stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="jobs in the sweep")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", help="folder for the sweep, kept (reused when it exists)")
    opts = ap.parse_args()
    tmp = None if opts.keep else tempfile.mkdtemp(prefix="hog-bench-report-")
    root = Path(opts.keep or tmp) / "sweep"
    try:
        if not (root / ".hog").exists():
            t = time.monotonic()
            synthetic_sweep(root, opts.n)
            print(f"made a sweep of {opts.n:,} jobs in {time.monotonic() - t:.1f}s")
        runs = [time_report(root) for _ in range(opts.reps)]
        walls, cpus = [w for w, _, _ in runs], [c for _, c, _ in runs]
        print(f"hog report, {opts.n:,} jobs, {opts.reps} reps, load {os.getloadavg()[0]:.2f}")
        print(f"  wall s: min {min(walls):.2f}  median {statistics.median(walls):.2f}  "
              f"max {max(walls):.2f}")
        print(f"  CPU s:  min {min(cpus):.2f}  median {statistics.median(cpus):.2f}  "
              f"max {max(cpus):.2f}")
        print(f"  page:   {runs[-1][2]:,} bytes")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
