"""The handoff between two jobs on one slot, and the runner's own CPU per job.

Three workloads (issue 11's table), each run ``--repeat`` times, interleaved between
the hog checkouts given (``--hog DIR``, several: e.g. a branch and its base) and
``xargs -P`` as the reference:

- ``gap``: 40 x ``sleep 0.25`` on ``--gpus 0``: the next job's first line minus this
  job's last line (each job prints ``$EPOCHREALTIME`` first and last), per handoff;
- ``idle``: 200 x ``sleep 0.2`` on ``--gpus 0,0,1,1``: the same per slot (``HOG_SLOT``),
  the idle time of a slot between two of its jobs;
- ``cpu``: 2,000 x ``true`` on ``--gpus 0``: the runner process's own CPU time
  (utime + stime from /proc/PID/stat, read while it is a zombie: its slot processes
  and jobs are not in it) divided by the jobs.

Prints min / median / max per workload and side. Run: ``python benchmarks/bench_handoff.py
--hog . --hog ../base --repeat 3``.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

MARK = 'echo "s $EPOCHREALTIME $HOG_SLOT"; {work}; echo "e $EPOCHREALTIME $HOG_SLOT"'
XMARK = 'echo "s $EPOCHREALTIME $1"; {work}; echo "e $EPOCHREALTIME $1"'
TICK = os.sysconf("SC_CLK_TCK")


def hog_env(root: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.abspath(root)
    return env


def run_hog(root: str, jobs: List[str], gpus: str, work: str) -> Tuple[float, int]:
    """Run ``jobs`` with the hog at ``root`` in a fresh directory; (wall s, runner CPU
    ticks). The job folders are left in ``work``."""
    job_file = os.path.join(work, "jobs.txt")
    with open(job_file, "w") as f:
        f.write("\n".join(jobs) + "\n")
    out = os.path.join(work, "out")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "hog", "--job-file", job_file, "--gpus",
                             gpus, "--output-dir", out, "--display", "quiet"],
                            cwd=work, env=hog_env(root), stdout=subprocess.DEVNULL)
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    with open(f"/proc/{proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])       # utime, stime (not the children's)
    proc.wait()
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"hog at {root} exited {proc.returncode}")
    return wall, ticks


def hog_lines(work: str) -> List[str]:
    out = os.path.join(work, "out")
    lines = []
    for name in os.listdir(out):
        path = os.path.join(out, name, f"{name}.OUT")
        if os.path.exists(path):
            with open(path) as f:
                lines += f.read().splitlines()
    return lines


def run_xargs(n: int, slots: int, work_cmd: str, work: str) -> List[str]:
    """``n`` jobs through ``xargs -P slots``; each job's slot is its argument mod slots."""
    script = XMARK.format(work=work_cmd)
    args = "\n".join(str(i % slots) for i in range(n)) + "\n"
    out = subprocess.run(["xargs", "-P", str(slots), "-n", "1", "bash", "-c", script, "x"],
                         input=args, capture_output=True, text=True, check=True, cwd=work)
    return out.stdout.splitlines()


def gaps(lines: List[str], by_slot: bool) -> List[float]:
    """Per slot (or all on one): each job's first line minus the previous job's last."""
    spans: Dict[str, List[Tuple[float, float]]] = {}
    starts: Dict[str, List[float]] = {}
    ends: Dict[str, List[float]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) < 2:
            continue
        slot = parts[2] if by_slot and len(parts) > 2 else "-"
        (starts if parts[0] == "s" else ends).setdefault(slot, []).append(float(parts[1]))
    result = []
    for slot in starts:
        spans[slot] = list(zip(sorted(starts[slot]), sorted(ends[slot])))
        for (_, end), (start, _) in zip(spans[slot], spans[slot][1:]):
            result.append(start - end)
    return result


def xargs_idle(lines: List[str], slots: int) -> List[float]:
    """xargs has no slots: with P processes, each end is followed by a start; the gap of
    every start to the latest end before it."""
    events = sorted((float(p[1]), p[0]) for p in (line.split() for line in lines)
                    if len(p) >= 2)
    ends: List[float] = []
    result = []
    for t, kind in events:
        if kind == "e":
            ends.append(t)
        elif ends:
            result.append(t - ends.pop(0))
    return result


def summary(values: List[float], scale: float = 1000.0, unit: str = "ms") -> str:
    if not values:
        return "-"
    values = [v * scale for v in values]
    return (f"min {min(values):.3f} median {statistics.median(values):.3f} "
            f"max {max(values):.3f} {unit} (n={len(values)})")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hog", action="append", required=True, help="a hog checkout")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="gap,idle,cpu")
    parser.add_argument("--cpu-jobs", type=int, default=2000)
    args = parser.parse_args(argv)
    workloads = args.workloads.split(",")
    results: Dict[Tuple[str, str], List[float]] = {}
    print(f"load average: {os.getloadavg()}")
    for _ in range(args.repeat):
        for side in args.hog + ["xargs"]:
            for workload in workloads:
                work = tempfile.mkdtemp(prefix="bench-handoff-")
                try:
                    key = (side, workload)
                    if workload == "gap":
                        jobs = [MARK.format(work="sleep 0.25")] * 40
                        if side == "xargs":
                            results.setdefault(key, []).extend(
                                gaps(run_xargs(40, 1, "sleep 0.25", work), False))
                        else:
                            run_hog(side, jobs, "0", work)
                            results.setdefault(key, []).extend(gaps(hog_lines(work), False))
                    elif workload == "idle":
                        jobs = [MARK.format(work="sleep 0.2")] * 200
                        if side == "xargs":
                            results.setdefault(key, []).extend(
                                xargs_idle(run_xargs(200, 4, "sleep 0.2", work), 4))
                        else:
                            run_hog(side, jobs, "0,0,1,1", work)
                            results.setdefault(key, []).extend(gaps(hog_lines(work), True))
                    elif workload == "cpu" and side != "xargs":
                        _, ticks = run_hog(side, ["true"] * args.cpu_jobs, "0", work)
                        results.setdefault(key, []).append(ticks / TICK / args.cpu_jobs)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    for (side, workload), values in sorted(results.items()):
        what = {"gap": "one-slot handoff gap", "idle": "slot idle per handoff",
                "cpu": "runner CPU per job"}[workload]
        print(f"{side}: {what}: {summary(values)}")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
