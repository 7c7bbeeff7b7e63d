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
  and jobs are not in it) divided by the jobs;
- ``spawn``: ``--spawn-jobs`` x ``sleep --spawn-sleep`` on ``--spawn-gpus`` (xargs: as
  many processes as slots), recorded with the kernel's process tracepoints (``perf
  record``; hog and xargs alike): from a job's exit to its parent's next process
  creation, per handoff. This is the issue's "previous job's exit to next job's spawn"
  without bash's start-up and exit, which the job lines of ``idle`` include (bash -c
  needs about 2 ms for them, whoever starts it). The same figure from hog's INFO files
  (``started`` of a slot's next job minus ``ended`` of its previous one; INFO keeps
  milliseconds, so only the mean means much; it leaves out the wake-up) is printed
  beside it. Needs ``perf`` with access to the sched tracepoints (root, or
  ``perf_event_paranoid`` <= -1).

Prints min / median / max per workload and side. Run: ``python benchmarks/bench_handoff.py
--hog . --hog ../base --repeat 3``.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from typing import Dict, List, Optional, Sequence, Tuple

MARK = 'echo "s $EPOCHREALTIME $HOG_SLOT"; {work}; echo "e $EPOCHREALTIME $HOG_SLOT"'
XMARK = 'echo "s $EPOCHREALTIME $1"; {work}; echo "e $EPOCHREALTIME $1"'
TICK = os.sysconf("SC_CLK_TCK")


def hog_env(root: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.abspath(root)
    return env


def run_hog(root: str, jobs: List[str], gpus: str, work: str,
            prefix: Sequence[str] = ()) -> Tuple[float, int]:
    """Run ``jobs`` with the hog at ``root`` in a fresh directory; (wall s, runner CPU
    ticks: of ``prefix``'s process if one is given). The job folders are left in
    ``work``."""
    job_file = os.path.join(work, "jobs.txt")
    with open(job_file, "w") as f:
        f.write("\n".join(jobs) + "\n")
    out = os.path.join(work, "out")
    t0 = time.monotonic()
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "hog", "--job-file", job_file, "--gpus",
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


def run_xargs(n: int, slots: int, work_cmd: str, work: str,
              prefix: Sequence[str] = ()) -> List[str]:
    """``n`` jobs through ``xargs -P slots``; each job's slot is its argument mod slots."""
    script = XMARK.format(work=work_cmd)
    args = "\n".join(str(i % slots) for i in range(n)) + "\n"
    out = subprocess.run([*prefix, "xargs", "-P", str(slots), "-n", "1", "bash", "-c", script, "x"],
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


def traced(trace: str) -> List[str]:
    """The prefix that records a command's process spawns and exits into ``trace``: the
    kernel's own tracepoints (``perf record``), which cost the traced processes almost
    nothing, timed with CLOCK_MONOTONIC."""
    return ["perf", "record", "-q", "-k", "mono", "-e", "sched:sched_process_fork",
            "-e", "sched:sched_process_exit", "-o", trace, "--"]


EVENT = re.compile(r"\s(\d+\.\d+): sched:sched_process_(fork|exit): (.*)")


def exit_to_spawn(trace: str) -> List[float]:
    """From a ``traced`` recording: for each process created, the time since the exit of
    the earliest child of the same parent that no creation has answered yet (one job
    at a time per hog slot; xargs starts one job per ended one). A thread's exit is
    not a process's (``group_dead=false``)."""
    text = subprocess.run(["perf", "script", "-i", trace], capture_output=True, text=True,
                          check=True).stdout
    parent: Dict[int, int] = {}
    events: List[Tuple[float, str, int]] = []
    for line in text.splitlines():
        m = EVENT.search(line)
        if not m:
            continue
        fields = dict(kv.split("=", 1) for kv in re.findall(r"\w+=\S+", m[3]))
        if m[2] == "fork":
            parent[int(fields["child_pid"])] = int(fields["pid"])
            events.append((float(m[1]), "spawn", int(fields["pid"])))
        elif fields.get("group_dead") == "true":
            events.append((float(m[1]), "exit", int(fields["pid"])))
    waiting: Dict[int, List[float]] = {}
    result = []
    for at, kind, pid in sorted(events):
        if kind == "exit" and pid in parent:
            waiting.setdefault(parent[pid], []).append(at)
        elif kind == "spawn" and waiting.get(pid):
            result.append(at - waiting[pid].pop(0))
    return result


def info_idle(work: str) -> List[float]:
    """Per slot, from the job folders' INFO: each job's ``started`` minus the ``ended``
    of the slot's job before it (INFO keeps milliseconds)."""
    spans: Dict[str, List[Tuple[float, float]]] = {}
    out = os.path.join(work, "out")
    for name in os.listdir(out):
        try:
            with open(os.path.join(out, name, "INFO")) as f:
                info = dict(line.rstrip("\n").split(": ", 1) for line in f if ": " in line)
            at = [datetime.fromisoformat(json.loads(info[k])).timestamp()
                  for k in ("started", "ended")]
        except (OSError, KeyError, ValueError, TypeError):
            continue
        spans.setdefault(info.get("slot", "-"), []).append((at[0], at[1]))
    result = []
    for slot in spans.values():
        slot.sort()
        result += [b[0] - a[1] for a, b in zip(slot, slot[1:])]
    return result


def summary(values: List[float], scale: float = 1000.0, unit: str = "ms") -> str:
    if not values:
        return "-"
    values = [v * scale for v in values]
    return (f"min {min(values):.3f} median {statistics.median(values):.3f} "
            f"max {max(values):.3f} mean {statistics.mean(values):.3f} {unit} "
            f"(n={len(values)})")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hog", action="append", required=True, help="a hog checkout")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="gap,idle,cpu")
    parser.add_argument("--cpu-jobs", type=int, default=2000)
    parser.add_argument("--spawn-jobs", type=int, default=200)
    parser.add_argument("--spawn-sleep", default="0.2")
    parser.add_argument("--spawn-gpus", default="0,0,1,1")
    args = parser.parse_args(argv)
    workloads = args.workloads.split(",")
    if "spawn" in workloads and shutil.which("perf") is None:
        sys.exit("the spawn workload needs perf (linux-tools)")
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
                    elif workload == "spawn":
                        trace = os.path.join(work, "trace")
                        sleep = f"sleep {args.spawn_sleep}"
                        if side == "xargs":
                            run_xargs(args.spawn_jobs, len(args.spawn_gpus.split(",")),
                                      sleep, work, traced(trace))
                        else:
                            run_hog(side, [sleep] * args.spawn_jobs, args.spawn_gpus, work,
                                    traced(trace))
                            results.setdefault((side, "spawn-info"), []).extend(
                                info_idle(work))
                        results.setdefault(key, []).extend(exit_to_spawn(trace))
                    elif workload == "cpu" and side != "xargs":
                        _, ticks = run_hog(side, ["true"] * args.cpu_jobs, "0", work)
                        results.setdefault(key, []).append(ticks / TICK / args.cpu_jobs)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    for (side, workload), values in sorted(results.items()):
        what = {"gap": "one-slot handoff gap", "idle": "slot idle per handoff",
                "cpu": "runner CPU per job",
                "spawn": "exit to next spawn per handoff (kernel tracepoints)",
                "spawn-info": "exit to next spawn per handoff (INFO, traced run)"}[workload]
        print(f"{side}: {what}: {summary(values)}")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
