#!/usr/bin/env python3
"""What the live dashboard costs: W1 (2,000 trivial jobs on slots 0,0,1,1) run by hog
on a pseudo-terminal, with the dashboard drawn, against the same run with hog's
output going to a file (plain lines).

    python3 benchmarks/bench_dashboard.py                 # 2,000 jobs, 5 interleaved reps
    python3 benchmarks/bench_dashboard.py --n 500 --reps 3
    python3 benchmarks/bench_dashboard.py --hog 'hog'     # an installed hog

Repetitions are interleaved (the mode that goes first alternates), every run gets
a fresh output directory, and medians are reported. A run counts only if hog
exits 0 and every job folder holds SUCCESS; a terminal run must also have drawn
the dashboard. Standard library only (pty), Linux.
"""
import argparse
import fcntl
import os
import pty
import resource
import select
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("terminal", "file")


def hog_argv(opts, jobs: Path, out: str):
    return shlex.split(opts.hog) + ["--job_file", str(jobs), "--gpus", opts.slots,
                                    "--output_dir", out]


def env_for(mode: str):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    if mode == "terminal":
        env["TERM"] = "xterm-256color"
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
    return env


def cpu_of_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


CLK_TCK = os.sysconf("SC_CLK_TCK")


class SelfCpu:
    """The CPU time of one process itself (not its children), sampled from /proc
    while it runs: the runner's main process, where the dashboard is drawn."""

    def __init__(self, pid: int):
        self.pid = pid
        self.ticks = 0
        self.next = 0.0

    def sample(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self.next:
            return
        self.next = now + 0.05
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            return
        if fields[0] not in (b"Z", b"X"):
            self.ticks = int(fields[11]) + int(fields[12])

    @property
    def seconds(self) -> float:
        return self.ticks / CLK_TCK


def run_on_terminal(argv, cwd: Path, env):
    """hog with stdin/stdout/stderr on a pty whose other end is read continuously."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=str(cwd), env=env, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True, close_fds=True)
    os.close(slave)
    cpu = SelfCpu(proc.pid)
    chunks = []
    while True:
        cpu.sample()
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                data = os.read(master, 1 << 16)
            except OSError:          # EIO: every writer has closed the terminal
                data = b""
            if data:
                chunks.append(data)
                continue
        if proc.poll() is not None and not ready:
            break
        if ready and proc.poll() is not None:
            break
    rc = proc.wait()
    wall = time.perf_counter() - t0
    os.close(master)
    return rc, wall, b"".join(chunks), cpu.seconds


def run_to_file(argv, cwd: Path, env, log: Path):
    with open(log, "wb") as f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL,
                                stdout=f, stderr=subprocess.STDOUT)
        cpu = SelfCpu(proc.pid)
        while proc.poll() is None:
            cpu.sample(force=True)
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    return proc.returncode, wall, log.read_bytes(), cpu.seconds


def successes(out: Path) -> int:
    n = 0
    with os.scandir(out) as it:
        for entry in it:
            if entry.is_dir() and os.path.exists(os.path.join(entry.path, "SUCCESS")):
                n += 1
    return n


def one_run(opts, work: Path, jobs: Path, mode: str, rep: int) -> dict:
    out = f"out-{mode}-{rep}"
    argv = hog_argv(opts, jobs, out)
    env = env_for(mode)
    cpu0 = cpu_of_children()
    if mode == "terminal":
        rc, wall, text, runner_cpu = run_on_terminal(argv, work, env)
    else:
        rc, wall, text, runner_cpu = run_to_file(argv, work, env, work / f"{out}.log")
    cpu = cpu_of_children() - cpu0
    ok = successes(work / out)
    frames = text.count(b"last output")
    problems = []
    if rc != 0:
        problems.append(f"exit code {rc}")
    if ok != opts.n:
        problems.append(f"{ok}/{opts.n} SUCCESS markers")
    if mode == "terminal" and frames == 0:
        problems.append("no dashboard drawn")
    if mode == "file" and b"\x1b[" in text:
        problems.append("terminal escapes in file output")
    if not opts.keep:
        shutil.rmtree(work / out, ignore_errors=True)
    return dict(mode=mode, rep=rep, wall_s=wall, jobs_per_s=opts.n / wall, cpu_s=cpu,
                runner_cpu_s=runner_cpu,
                frames=frames, bytes=len(text), problems=problems)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="trivial jobs per run (default 2000)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per mode (default 5)")
    ap.add_argument("--slots", default="0,0,1,1", help="--gpus for hog (default 0,0,1,1)")
    ap.add_argument("--hog", default=f"{shlex.quote(sys.executable)} -m hog",
                    help="how to start hog (default: this Python, -m hog, this checkout)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    opts = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hog-bench-dashboard-"))
    jobs = work / "jobs.txt"
    jobs.write_text("true\n" * opts.n)
    print(f"# W1 with and without the dashboard: {opts.n} x true, --gpus {opts.slots}, "
          f"{opts.reps} interleaved reps, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}", file=sys.stderr)
    runs = []
    try:
        for rep in range(opts.reps):
            order = MODES if rep % 2 == 0 else MODES[::-1]
            for mode in order:
                r = one_run(opts, work, jobs, mode, rep)
                runs.append(r)
                print(f"  rep {rep} {mode:<8} {r['wall_s']:6.2f}s  {r['jobs_per_s']:7.1f} jobs/s"
                      f"  cpu {r['cpu_s']:6.2f}s  runner cpu {r['runner_cpu_s']:5.2f}s"
                      f"  frames {r['frames']:4d}"
                      + (f"  PROBLEM: {', '.join(r['problems'])}" if r["problems"] else ""),
                      file=sys.stderr, flush=True)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"# kept {work}", file=sys.stderr)
    med = {}
    print("| output | median wall s | median jobs/s | median CPU s, all processes | "
          "median CPU s, runner's main process | dashboard frames/s |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        med[mode] = {k: statistics.median(r[k] for r in mine)
                     for k in ("wall_s", "jobs_per_s", "cpu_s", "runner_cpu_s")}
        rate = statistics.median(r["frames"] / r["wall_s"] for r in mine) \
            if mode == "terminal" else None
        m = med[mode]
        print(f"| {mode} | {m['wall_s']:.2f} | {m['jobs_per_s']:.1f} | {m['cpu_s']:.2f} | "
              f"{m['runner_cpu_s']:.2f} | {'-' if rate is None else f'{rate:.1f}'} |")
    ratio = med["terminal"]["jobs_per_s"] / med["file"]["jobs_per_s"]
    pairs = [a["jobs_per_s"] / b["jobs_per_s"] for a in runs if a["mode"] == "terminal"
             for b in runs if b["mode"] == "file" and b["rep"] == a["rep"]]
    print(f"\nthroughput with the dashboard / to a file: {ratio:.3f} of the medians, "
          f"{statistics.median(pairs):.3f} median of the per-repetition ratios "
          f"({'within' if ratio >= 0.9 else 'NOT within'} 10 %); runner CPU "
          f"{med['terminal']['runner_cpu_s'] / med['file']['runner_cpu_s']:.3f}x")
    bad = [r for r in runs if r["problems"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
