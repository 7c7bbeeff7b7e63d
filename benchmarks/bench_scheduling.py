#!/usr/bin/env python3
"""Scheduling scenarios, run for real: hog with sleep jobs on fake GPU ids.

  S1  Guild's affinity set: aaa on GPU 0, bbb on GPU 0, ccc on GPUs 0+1, ddd on GPU 1,
      each one unit long, in every order: the optimum is 3 rounds.
  S2  aaa (1 GPU, 4 units), ccc (2 GPUs, 2 units), bbb, ddd (1 GPU, 2 units) on 2 GPUs:
      the optimum is 6 units; blocking behind the head job (Dask) gives 8.
  S3  a 2-GPU job amid a stream of 1-GPU jobs on 2 GPUs: how long after reaching the
      head of the queue does it start, in job durations? (Ray alone: never, until the
      stream ends.)

Usage: python3 benchmarks/bench_scheduling.py [--unit 0.5] [--orders 24] [--hog 'python3 -m hog']
Standard library only; each job records its start and end with bash's $EPOCHREALTIME.
"""
import argparse
import itertools
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

JOB = "echo \"$HOG_JOB_NAME start $EPOCHREALTIME\" >> {log}; sleep {d}; " \
      "echo \"$HOG_JOB_NAME end $EPOCHREALTIME\" >> {log}"


def run(hog, jobs, gpus, work):
    """jobs: list of (name, gpus, gpu_ids or None, duration). Returns {name: (start, end)}."""
    work.mkdir(parents=True, exist_ok=True)
    log = work / "times.log"
    lines = ["jobs:"]
    for name, n, ids, d in jobs:
        cmd = JOB.format(log=shlex.quote(str(log)), d=d)
        entry = f"  - {{name: {name}, gpus: {n}, cmd: {cmd!r}"
        entry += f", gpu_ids: [{', '.join(ids)}]}}" if ids else "}"
        lines.append(entry)
    (work / "jobs.yaml").write_text("\n".join(lines) + "\n")
    subprocess.run(shlex.split(hog) + ["--job_file", "jobs.yaml", "--gpus", gpus, "-q",
                                       "--output_dir", "out"], cwd=work, check=False,
                   stdout=subprocess.DEVNULL)
    times = {}
    for line in log.read_text().splitlines():
        name, what, t = line.split()
        times.setdefault(name, [None, None])[0 if what == "start" else 1] = float(t)
    return times


def makespan(times):
    return max(e for _, e in times.values()) - min(s for s, _ in times.values())


def s1(hog, unit, orders, root):
    base = [("aaa", 1, ["0"]), ("bbb", 1, ["0"]), ("ccc", 2, ["0", "1"]), ("ddd", 1, ["1"])]
    rounds = []
    for k, perm in enumerate(list(itertools.permutations(base))[:orders]):
        t = run(hog, [(n, g, ids, unit) for n, g, ids in perm], "0,1", root / f"s1-{k}")
        rounds.append(makespan(t) / unit)
    return rounds


def s2(hog, unit, reps, root):
    jobs = [("aaa", 1, None, 4 * unit), ("ccc", 2, None, 2 * unit), ("bbb", 1, None, 2 * unit),
            ("ddd", 1, None, 2 * unit)]
    return [makespan(run(hog, jobs, "0,1", root / f"s2-{k}")) / unit for k in range(reps)]


def s3(hog, unit, reps, root):
    waits = []
    for k in range(reps):
        jobs = [(f"s{i:02d}", 1, None, unit * (1 + 0.2 * (i % 3))) for i in range(24)]
        jobs.insert(6, ("big", 2, None, unit))
        t = run(hog, jobs, "0,1", root / f"s3-{k}")
        head = t["s05"][0]          # the job before it started: "big" is now at the head
        waits.append((t["big"][0] - head) / unit)
    return waits


def fmt(vals):
    return (f"{statistics.median(vals):.2f} "
            f"(min {min(vals):.2f}, max {max(vals):.2f}, n={len(vals)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unit", type=float, default=0.5, help="seconds per job-duration unit")
    ap.add_argument("--orders", type=int, default=24, help="S1: how many of the 24 orders")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--hog", default=f"{sys.executable} -m hog")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hog-sched-") as tmp:
        root = Path(tmp)
        r1 = s1(args.hog, args.unit, args.orders, root)
        r2 = s2(args.hog, args.unit, args.reps, root)
        r3 = s3(args.hog, args.unit, args.reps, root)
    print(f"unit = {args.unit} s\n")
    print("| scenario | result (in units) | target |")
    print("|---|---|---|")
    print(f"| S1 affinity set, {len(r1)} orders: makespan | {fmt(r1)} | 3 rounds in every order |")
    print(f"| S2 4/2/2/2 mix on 2 GPUs: makespan | {fmt(r2)} | near 6 (Dask: 8) |")
    print(f"| S3 2-GPU job in a 1-GPU stream: wait at the head | {fmt(r3)} | within one job "
          f"duration (1.0-1.4 units) |")
    ok = max(r1) < 3.5 and statistics.median(r2) < 7 and max(r3) <= 1.6
    print("\nall targets met" if ok else "\nTARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
