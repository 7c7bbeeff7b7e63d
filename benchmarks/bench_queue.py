#!/usr/bin/env python3
"""What the persistent queue costs, measured for real with the hog on PYTHONPATH.

  Q1  hog add DIR --job_file F with 10,000 lines, no runner (target: under 2 s)
  Q2  hog status DIR and hog status DIR --json on a 100,000-job queue (target: under 0.5 s)
  Q3  W1-like throughput (2,000 trivial jobs on slots 0,0,1,1) of this hog against an
      earlier revision that had no store (default: the foundation runner, 8c77154), run
      interleaved in the same process so that machine drift hits both alike
      (target: this hog's jobs/s at least 0.85 x the foundation's)

Usage: python3 benchmarks/bench_queue.py [--reps 5] [--only Q1 --only Q2] [--base REV]
Standard library only. Every run happens in a fresh temporary folder, removed at the end.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOUNDATION = "8c77154"


def hog(argv, cwd, pythonpath=ROOT, check=True, quiet=True):
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "hog", *argv], cwd=str(cwd), env=env,
                       stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - t0
    if check and r.returncode != 0:
        sys.exit(f"hog {' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return took


def lines_file(path: Path, n: int, command: str) -> Path:
    path.write_text("".join(command.format(i=i) + "\n" for i in range(n)))
    return path


def q1(work: Path, reps: int):
    jobs = lines_file(work / "add.txt", 10_000, "python train.py --seed {i}")
    times = []
    for k in range(reps):
        times.append(hog(["add", f"q1-{k}", "--job_file", str(jobs)], work))
    return times


def q2(work: Path, reps: int):
    jobs = lines_file(work / "big.txt", 100_000, "python train.py --seed {i}")
    hog(["add", "q2", "--job_file", str(jobs)], work)
    plain = [hog(["status", "q2"], work) for _ in range(reps)]
    as_json = [hog(["status", "q2", "--json"], work) for _ in range(reps)]
    return plain, as_json


def q3(work: Path, reps: int, base: str):
    old = work / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), base],
                   check=True)
    try:
        jobs = lines_file(work / "w1.txt", 2000, "echo $CUDA_VISIBLE_DEVICES {i}")
        rates = {"this": [], "base": []}
        for k in range(reps):
            order = ("this", "base") if k % 2 == 0 else ("base", "this")
            for who in order:
                where = work / f"q3-{who}-{k}"
                where.mkdir()
                took = hog(["--job_file", str(jobs), "--gpus", "0,0,1,1", "-q"], where,
                           pythonpath=ROOT if who == "this" else old)
                done = len(list((where / "output").glob("job_*/SUCCESS")))
                if done != 2000:
                    sys.exit(f"Q3 {who}: {done} of 2000 jobs succeeded")
                rates[who].append(2000 / took)
        return rates
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                       check=False)


def fmt(vals, unit="s", nd=3):
    return f"{statistics.median(vals):.{nd}f} {unit} (min {min(vals):.{nd}f}, " \
           f"max {max(vals):.{nd}f}, n={len(vals)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", action="append", choices=("Q1", "Q2", "Q3"))
    ap.add_argument("--base", default=FOUNDATION, help="revision Q3 compares with")
    args = ap.parse_args()
    todo = args.only or ["Q1", "Q2", "Q3"]
    ok = True
    rows = []
    with tempfile.TemporaryDirectory(prefix="hog-bench-queue-") as tmp:
        work = Path(tmp)
        if "Q1" in todo:
            t = q1(work, args.reps)
            ok &= statistics.median(t) < 2.0
            rows.append(("Q1 hog add, 10,000 jobs", fmt(t), "< 2 s"))
        if "Q2" in todo:
            plain, as_json = q2(work, args.reps)
            ok &= max(statistics.median(plain), statistics.median(as_json)) < 0.5
            rows.append(("Q2 hog status, 100,000 queued jobs", fmt(plain), "< 0.5 s"))
            rows.append(("Q2 hog status --json, 100,000 queued jobs", fmt(as_json), "< 0.5 s"))
        if "Q3" in todo:
            rates = q3(work, args.reps, args.base)
            this, base = statistics.median(rates["this"]), statistics.median(rates["base"])
            ok &= this >= 0.85 * base
            rows.append(("Q3 jobs/s, this hog (store on)", fmt(rates["this"], "jobs/s", 0), ""))
            rows.append((f"Q3 jobs/s, {args.base} (no store)", fmt(rates["base"], "jobs/s", 0),
                         ""))
            rows.append(("Q3 ratio this / base", f"{this / base:.2f}", ">= 0.85"))
    print("| measure | median | target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nall targets met" if ok else "\nTARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
