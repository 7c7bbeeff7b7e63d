#!/usr/bin/env python3
"""Start-up and the store at scale, measured for real with the hog on PYTHONPATH.

  S1  hog add DIR --job_file F with 1,000,000 lines, no runner: wall time and the
      process's peak RSS (targets: <= 20 s, <= 60 MB)
  S2  hog status DIR (and --json) on that 1,000,000-job queue (target: <= 50 ms), and
      on a queue of one job (the same if it is O(1) in jobs)
  S3  the first job of a 100,000-line job file: from starting hog to the first job's
      command running (it writes $EPOCHREALTIME; target: <= 100 ms)
  S3h the same, started as the hog command a user types (the console script beside
      --python, which pip makes): no runpy, which python -m loads (about 3.5 ms)
  S4  one hog add DIR -- CMD (target: <= 100 ms)
  S5  hog --version
  S6  a finished sweep of --folders jobs (default 100,000), each with its job folder
      (made here: rows marked succeeded, a folder with INFO and SUCCESS each): hog status
      DIR, --json, and hog add DIR -- CMD (the same targets as S2 and S4: O(1) in the
      sweep's jobs and folders)
  S0  the interpreter alone (python -c pass): what every row above includes

``--python``: the interpreter to measure with, e.g. a fresh venv's (``python3 -m venv V``;
nothing installed), whose start-up has none of the site hooks a shared machine may add
to its system Python (on this one, a .pth that loads certifi: about 15 ms of each row).

Each prints min / median / max of a few runs (S1 runs once unless --reps-big).
Usage: python3 benchmarks/bench_store.py [--reps 5] [--only S2 --only S4]
       [--tree PATH: the checkout whose hog is measured; default this one]
       [--jobs 1000000] [--first-lines 100000] [--folders 100000]
Standard library only; bash 5 (for $EPOCHREALTIME). Every run happens in a fresh
temporary folder, removed at the end.
"""
import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Tuple

ROOT = Path(__file__).resolve().parent.parent


class Hog:
    def __init__(self, tree: Path, cwd: Path, python: str = sys.executable):
        self.python = python
        # compiled once, as in an installed hog (not each run, as with
        # PYTHONDONTWRITEBYTECODE), into the temporary folder, not the checkout
        self.env = dict(os.environ, PYTHONPATH=str(tree),
                        PYTHONPYCACHEPREFIX=str(cwd / "pycache"))
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.cwd = cwd

    def popen(self, argv: List[str], script: bool = False, **kw) -> subprocess.Popen:
        """``python -m hog ARGV``, or with ``script`` the hog command beside ``python``
        (its ``hog`` loads the tree's package too: PYTHONPATH comes before the venv's)."""
        start = [str(Path(self.python).parent / "hog")] if script else [self.python, "-m", "hog"]
        return subprocess.Popen([*start, *argv], cwd=str(self.cwd),
                                env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)

    def run(self, argv: List[str], ok: Tuple[int, ...] = (0,)) -> Tuple[float, float, float]:
        """(wall seconds, peak RSS in MB, CPU seconds) of one hog command."""
        t0 = time.perf_counter()
        p = self.popen(argv)
        _, status, usage = os.wait4(p.pid, 0)
        took = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err = p.stderr.read().decode() if p.stderr else ""
        if p.returncode not in ok:
            sys.exit(f"hog {' '.join(argv)} failed ({p.returncode}): {err.strip()}")
        return took, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def lines_file(path: Path, n: int, first: str = "") -> Path:
    with open(path, "w") as f:
        if first:
            f.write(first + "\n")
            n -= 1
        for start in range(0, n, 10_000):     # in pieces: this process stays small, and
            f.write("".join(f"echo job {i}\n"  # its size is inherited by each hog it starts
                            for i in range(start, min(n, start + 10_000))))  # (ru_maxrss)
    return path


def show(label: str, values: List[float], unit: str = "ms", scale: float = 1000) -> None:
    v = [x * scale for x in values]
    print(f"{label:<44} min {min(v):9.1f}  median {statistics.median(v):9.1f}  "
          f"max {max(v):9.1f} {unit}  (n={len(v)})", flush=True)


def repeat(reps: int, once: Callable[[int], float]) -> List[float]:
    return [once(i) for i in range(reps)]


def first_job(hog: Hog, tmp: Path, lines: int, rep: int, script: bool = False) -> float:
    """Seconds from starting hog to the first job's command running."""
    stamp = tmp / f"stamp{rep}"
    jobs = lines_file(tmp / f"first{rep}.txt", lines, f"echo $EPOCHREALTIME > {stamp}")
    t0 = time.time()
    p = hog.popen(["--job-file", str(jobs), "--gpus", "0", "--output-dir",
                   str(tmp / f"first{rep}"), "--display", "quiet"], script=script,
                  start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            text = stamp.read_text().strip()
        except OSError:
            text = ""
        if text:
            break
        time.sleep(0.002)
    os.killpg(p.pid, signal.SIGTERM)
    p.wait()
    if not text:
        sys.exit("the first job never ran")
    return float(text) - t0


def finished_sweep(hog: Hog, tmp: Path, n: int) -> Path:
    """A sweep of ``n`` jobs that all succeeded, each with its folder."""
    root = tmp / "done"
    hog.run(["add", str(root), "--job-file", str(lines_file(tmp / "done.txt", n))])
    db = sqlite3.connect(str(root / ".hog" / "hog.sqlite"))
    with db:
        db.execute("UPDATE jobs SET status = 'succeeded', attempt = 1, exit_code = 0, "
                   "started = 1.7e9 + id, ended = 1.7e9 + id + 0.5")
    db.close()
    for i in range(n):
        folder = root / f"job_{i}"
        folder.mkdir()
        (folder / "INFO").write_text(f'name: "job_{i}"\nindex: {i}\nstatus: "succeeded"\n')
        (folder / "SUCCESS").write_text("")
    return root


def bare(python: str, env) -> float:
    t0 = time.perf_counter()
    subprocess.run([python, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--reps-big", type=int, default=1, help="repetitions of S1")
    ap.add_argument("--only", action="append",
                    choices=["S0", "S1", "S2", "S3", "S3h", "S4", "S5", "S6"])
    ap.add_argument("--python", default=sys.executable, help="the interpreter (default: this)")
    ap.add_argument("--tree", type=Path, default=ROOT)
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--first-lines", type=int, default=100_000)
    ap.add_argument("--folders", type=int, default=100_000, help="the jobs of S6")
    args = ap.parse_args()
    only = set(args.only or ["S0", "S1", "S2", "S3", "S4", "S5", "S6"])
    print(f"hog from {args.tree} with {args.python}; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="hog-bench-store-") as t:
        tmp = Path(t)
        hog = Hog(args.tree, tmp, args.python)
        hog.run(["status", str(tmp / "none")], ok=(2,))     # compiles what the verbs load
        if only & {"S1", "S2"}:
            big = lines_file(tmp / "big.txt", args.jobs)
            walls, rss, cpu = [], [], []
            for i in range(args.reps_big if "S1" in only else 1):
                took, peak, used = hog.run(["add", str(tmp / f"big{i}"), "--job-file", str(big)])
                walls.append(took)
                rss.append(peak)
                cpu.append(used)
            if "S1" in only:
                show(f"S1 hog add --job-file ({args.jobs} jobs)", walls, "s", 1)
                show("S1 CPU (user + system)", cpu, "s", 1)
                show("S1 peak RSS", rss, "MB", 1)
            if "S2" in only:
                show(f"S2 hog status ({args.jobs} jobs)",
                     repeat(args.reps, lambda i: hog.run(["status", str(tmp / "big0")])[0]))
                hog.run(["add", str(tmp / "small"), "--", "true"])
                show("S2 hog status (1 job: the same, if O(1) in jobs)",
                     repeat(args.reps, lambda i: hog.run(["status", str(tmp / "small")])[0]))
                show(f"S2 hog status --json ({args.jobs} jobs)", repeat(
                    args.reps, lambda i: hog.run(["status", str(tmp / "big0"), "--json"])[0]))
        if "S3" in only:
            first_job(hog, tmp, 10, -1)                     # compiles what a run loads
            show(f"S3 first job of a {args.first_lines}-line file", repeat(
                args.reps, lambda i: first_job(hog, tmp, args.first_lines, i)))
        if "S3h" in only:
            if not (Path(args.python).parent / "hog").exists():
                sys.exit(f"S3h: no hog command beside {args.python}")
            first_job(hog, tmp, 10, -2, script=True)
            show("S3h the same, as the hog command", repeat(
                args.reps, lambda i: first_job(hog, tmp, args.first_lines, 100 + i, True)))
        if "S4" in only:
            show("S4 hog add DIR -- CMD", repeat(
                args.reps, lambda i: hog.run(["add", str(tmp / "one"), "--", "true"])[0]))
        if "S5" in only:
            show("S5 hog --version", repeat(args.reps, lambda i: hog.run(["--version"])[0]))
        if "S6" in only:
            done = finished_sweep(hog, tmp, args.folders)
            show(f"S6 hog status ({args.folders} jobs and folders)", repeat(
                args.reps, lambda i: hog.run(["status", str(done)])[0]))
            show("S6 hog status --json", repeat(
                args.reps, lambda i: hog.run(["status", str(done), "--json"])[0]))
            show("S6 hog add DIR -- CMD", repeat(
                args.reps, lambda i: hog.run(["add", str(done), "--", "true"])[0]))
        if "S0" in only:
            show("S0 the interpreter alone (python -c pass)", repeat(args.reps, lambda i: bare(
                args.python, hog.env)))


if __name__ == "__main__":
    main()
