#!/usr/bin/env python3
"""Benchmark hog against the two job runners everyone already has: GNU xargs and GNU parallel.

    python3 benchmarks/bench_runners.py                      # every workload, 3 reps (~5 min)
    python3 benchmarks/bench_runners.py --quick              # smoke test, 1 rep (~1.5 min)
    python3 benchmarks/bench_runners.py --reps 5 --workload W1 --workload W2
    python3 benchmarks/bench_runners.py --runner hog --runner xargs --out res.jsonl
    python3 benchmarks/bench_runners.py --report res.jsonl   # tables from saved results

Standard library only, Python 3.9+, Linux (/proc). No GPU is needed: GPU ids are
labels, and pinning is checked through the CUDA_VISIBLE_DEVICES each job sees.
See benchmarks/README.md for what each workload measures.
"""
import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

RUN_VAR = "HOGBENCH_RUN"    # given to the runner; everything it starts inherits it
JOB_VAR = "HOGBENCH_JOB"    # set on each job's own command: the job script and its children
CLK_TCK = os.sysconf("SC_CLK_TCK")
NPROC = os.cpu_count() or 1
RUNNERS = ("hog", "xargs", "parallel")

# One job: a bash script.  It appends one line per event to a shared log (short
# O_APPEND writes are atomic), so the harness learns each job's id, pinning and
# start/end time from the job itself, without trusting the runner.
#   S <id> <pid> <start_us>                    before a sleeping job sleeps
#   R <id> <cvd> <start_us> <end_us> <pid>     when the job ends
# $EPOCHREALTIME needs no fork; stripping non-digits also copes with a ',' locale.
JOB_SH = r"""#!/bin/bash
# job.sh LOG ID SECONDS TOKEN    (written by bench_runners.py)
t0=${EPOCHREALTIME//[!0-9]/}
if [ "$3" != 0 ]; then
  echo "S $2 $$ $t0" >> "$1"
  sleep "$3"
fi
echo "OUT-$2-$4"
echo "ERR-$2-$4" >&2
c=${CUDA_VISIBLE_DEVICES-UNSET}
echo "R $2 ${c:-EMPTY} $t0 ${EPOCHREALTIME//[!0-9]/} $$" >> "$1"
"""

# name: (jobs, seconds per job, jobs in --quick)
WORKLOADS = {
    "W1": dict(desc="throughput: trivial jobs on slots 0,0,1,1", n=2000, dur=0, quick_n=200),
    "W2": dict(desc="idle gap per slot handoff: sleep 0.25 jobs on 4 slots", n=40, dur=0.25,
               quick_n=20),
    "W4": dict(desc="scale: 100,000 trivial lines, stopped at the cap", n=100_000, dur=0,
               quick_n=100_000),
    "W5": dict(desc="SIGINT to the runner's PID while 4 of 8 x sleep 30 run", n=8, dur=30,
               quick_n=8, mode="pid"),
    "W5g": dict(desc="SIGINT to the runner's process group (Ctrl-C) while 4 of 8 x sleep 30 run",
                n=8, dur=30, quick_n=8, mode="group"),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- runners
def gnu_xargs_ok():
    try:
        p = subprocess.run(["xargs", "--help"], capture_output=True, text=True, timeout=10)
        return "process-slot-var" in p.stdout + p.stderr
    except (OSError, subprocess.TimeoutExpired):
        return False


def version_of(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


def available(runner, opts):
    """(usable, version or reason)"""
    if runner == "hog":
        exe = shutil.which(shlex.split(opts.hog)[0])
        return (True, version_of(shlex.split(opts.hog) + ["--version"])) if exe else \
            (False, f"{opts.hog!r} not found")
    if runner == "xargs":
        return (True, version_of(["xargs", "--version"])) if gnu_xargs_ok() else \
            (False, "needs GNU xargs with --process-slot-var")
    if runner == "parallel":
        return (True, version_of(["parallel", "--version"])) if shutil.which("parallel") else \
            (False, "GNU parallel not installed")
    return False, "unknown runner"


def bash_array(slots):
    return "g=(" + " ".join(shlex.quote(s) for s in slots) + ")"


def command_for(runner, jobs, slots, opts):
    """(argv, stdin path or None, extra env) that runs every line of `jobs` with bash,
    at most len(slots) at a time, each with CUDA_VISIBLE_DEVICES = its slot's GPU id."""
    k = str(len(slots))
    if runner == "hog":
        return (shlex.split(opts.hog) + ["--job_file", str(jobs), "--gpus", ",".join(slots),
                                         "--output_dir", "out"] + shlex.split(opts.hog_args),
                None, {})
    if runner == "xargs":
        # one line per bash; the slot number (0..K-1) indexes a bash array of GPU ids
        script = (bash_array(slots)
                  + '; export CUDA_VISIBLE_DEVICES="${g[$HOGBENCH_XSLOT]}"; eval "$1"')
        return (["xargs", "-P", k, "-d", "\n", "-n", "1", "--process-slot-var=HOGBENCH_XSLOT",
                 "bash", "-c", script, "xargs-job"], jobs, {})
    if runner == "parallel":
        # {%} is the job slot (1..K); {} is the line, shell-quoted by parallel, run by eval
        script = bash_array(slots) + '; export CUDA_VISIBLE_DEVICES="${g[{%}-1]}"; eval {}'
        return (["parallel", "--will-cite", "-j", k, "--joblog", "joblog.tsv", script,
                 "::::", str(jobs)], None, {"PARALLEL_SHELL": shutil.which("bash") or "/bin/bash"})
    raise ValueError(runner)


# --------------------------------------------------------------------------- /proc
def read_stat(pid):
    """(state, ppid, pgrp, starttime) or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        rest = raw[raw.rindex(b")") + 2:].split()
        return rest[0].decode(), int(rest[1]), int(rest[2]), int(rest[19])
    except (OSError, ValueError, IndexError):
        return None


def read_environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return b"\0" + f.read()
    except OSError:
        return b""


def uptime_ticks():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) * CLK_TCK


class Tags:
    def __init__(self):
        self.run = uuid.uuid4().hex
        self.job = uuid.uuid4().hex
        self._run_b = f"\0{RUN_VAR}={self.run}\0".encode()
        self._job_b = f"\0{JOB_VAR}={self.job}\0".encode()

    def scan(self, root):
        """Every process of this run: descendants of `root` plus any process whose
        environment carries the run or job tag (so detached ones are found too).
        {pid: dict(state, ppid, pgrp, start, age_s, job)}"""
        stats = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                st = read_stat(int(name))
                if st:
                    stats[int(name)] = st
        kids = {}
        for pid, st in stats.items():
            kids.setdefault(st[1], []).append(pid)
        tree, stack = set(), ([root] if root in stats else [])
        while stack:
            p = stack.pop()
            if p not in tree:
                tree.add(p)
                stack.extend(kids.get(p, ()))
        now, me, out = uptime_ticks(), os.getpid(), {}
        for pid, (state, ppid, pgrp, start) in stats.items():
            if pid == me:
                continue
            env = read_environ(pid)
            job = self._job_b in env
            if pid in tree or job or self._run_b in env:
                out[pid] = dict(state=state, ppid=ppid, pgrp=pgrp, start=start, job=job,
                                age_s=(now - start) / CLK_TCK)
        return out


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def is_alive(pid, start):
    st = read_stat(pid)
    return st is not None and st[3] == start and st[0] not in ("Z", "X")


def cpu_busy_pct(interval=0.3):
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    i0, t0 = snap()
    time.sleep(interval)
    i1, t1 = snap()
    return round(100.0 * (1 - (i1 - i0) / max(1, t1 - t0)), 1)


# --------------------------------------------------------------------------- one run
class Spawned:
    """The runner process, started in a new session (its pid is its process group)
    and reaped by a thread with wait4, which also yields its rusage."""

    def __init__(self, argv, cwd, env, stdin_path):
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        out, err = open(cwd / "runner.stdout", "wb"), open(cwd / "runner.stderr", "wb")
        try:
            self.t0 = time.time_ns()
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=out,
                                         stderr=err, start_new_session=True)
        finally:
            for f in (out, err) + ((stdin,) if stdin_path else ()):
                f.close()
        self.pid = self.proc.pid
        self.t1 = self.rc = self.rusage = None
        self.done = threading.Event()
        threading.Thread(target=self._reap, daemon=True).start()

    def _reap(self):
        _, status, ru = os.wait4(self.pid, 0)
        self.t1 = time.time_ns()
        self.rc = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.rc     # so Popen never waits on a reused pid
        self.rusage = ru
        self.done.set()

    def signal_group(self, sig):
        if not self.done.is_set():         # while unreaped, the group id cannot be reused
            try:
                os.killpg(self.pid, sig)
            except OSError:
                pass

    def signal_pid(self, sig):
        if not self.done.is_set():
            try:
                os.kill(self.pid, sig)
            except OSError:
                pass


def kill_everything(sp, tags):
    """SIGKILL the runner's process group and, by PID, every process of the run."""
    sp.signal_group(signal.SIGKILL)
    for _ in range(5):
        procs = {p: v for p, v in tags.scan(sp.pid).items() if v["state"] not in ("Z", "X")}
        if not procs:
            break
        for pid in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
    sp.done.wait(10)


def read_log(path):
    """ends: {id: [dict(cvd, s, e, pid)]}, starts: {id: (pid, start_ns)}"""
    ends, starts = {}, {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ends, starts
    for line in text.splitlines():
        f = line.split()
        try:
            if f[0] == "R" and len(f) == 6:
                ends.setdefault(int(f[1]), []).append(
                    dict(cvd=f[2], s=int(f[3]) * 1000, e=int(f[4]) * 1000, pid=int(f[5])))
            elif f[0] == "S" and len(f) == 4:
                starts[int(f[1])] = (int(f[2]), int(f[3]) * 1000)
        except (ValueError, IndexError):
            continue
    return ends, starts


def max_concurrent(intervals):
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    cur = best = 0
    for _, d in events:     # at equal times the end (-1) sorts first
        cur += d
        best = max(best, cur)
    return best


def check_schedule(ends, n, slots, expect_all=True):
    """Exactly once, pinning and per-GPU concurrency, from the jobs' own records."""
    flat = [r for rs in ends.values() for r in rs]
    limit = {g: slots.count(g) for g in set(slots)}
    per_gpu = {g: max_concurrent([(r["s"], r["e"]) for r in flat if r["cvd"] == g])
               for g in sorted(limit)}
    c = dict(ran=len([i for i in ends if 0 <= i < n]),
             missing=sum(1 for i in range(n) if i not in ends) if expect_all else None,
             dup=sum(1 for rs in ends.values() if len(rs) > 1),
             unknown_ids=sum(1 for i in ends if not 0 <= i < n),
             bad_cvd=sum(1 for r in flat if r["cvd"] not in limit),
             max_per_gpu=per_gpu,
             over_limit={g: f"{v}>{limit[g]}" for g, v in per_gpu.items() if v > limit[g]},
             max_total=max_concurrent([(r["s"], r["e"]) for r in flat]))
    c["ok"] = (c["ran"] > 0 and not c["missing"] and not c["dup"] and not c["unknown_ids"]
               and not c["bad_cvd"] and not c["over_limit"] and c["max_total"] <= len(slots))
    return c


def token_ids(data, kind, token):
    return {int(m) for m in re.findall(rf"{kind}-(\d+)-{token}".encode(), data)}


def hog_folders(run_dir):
    return sorted(p for p in (run_dir / "out").glob("*")
                  if p.is_dir() and not p.name.startswith("."))


def info_fields(folder):
    try:
        text = (folder / "INFO").read_text(errors="replace")
    except OSError:
        return {}
    out = {}
    for key in ("status", "command", "index"):
        m = re.search(rf"^{key}:\s*(.*)$", text, re.M)
        if m:
            out[key] = m.group(1).strip().strip('"')
    return out


def check_capture(runner, run_dir, n, token):
    """Every job's stdout and stderr token captured, stdout and stderr kept apart.
    hog: in out/job_N/job_N.OUT and .ERR (one job per folder); others: the runner's
    own stdout / stderr."""
    want = set(range(n))
    if runner == "hog":
        out_ids, err_ids, mixed, misplaced, markers = set(), set(), 0, 0, 0
        for d in hog_folders(run_dir):
            o = b"".join(p.read_bytes() for p in d.glob("*.OUT"))
            e = b"".join(p.read_bytes() for p in d.glob("*.ERR"))
            oi, ei = token_ids(o, "OUT", token), token_ids(e, "ERR", token)
            out_ids |= oi
            err_ids |= ei
            mixed += bool(token_ids(o, "ERR", token) or token_ids(e, "OUT", token))
            idx = re.search(r"(\d+)$", d.name)
            misplaced += len(oi) != 1 or (idx is not None and oi != {int(idx.group(1))})
            markers += (d / "SUCCESS").exists() and not (d / "FAILURE").exists()
        c = dict(where="out/job_*/job_*.OUT|ERR", folders=len(hog_folders(run_dir)),
                 success_markers=markers, folder_id_mismatch=misplaced)
    else:
        o = (run_dir / "runner.stdout").read_bytes()
        e = (run_dir / "runner.stderr").read_bytes()
        out_ids, err_ids = token_ids(o, "OUT", token), token_ids(e, "ERR", token)
        mixed = len(token_ids(o, "ERR", token) | token_ids(e, "OUT", token))
        c = dict(where="runner stdout|stderr")
    c.update(out=len(out_ids & want), err=len(err_ids & want), mixed=mixed)
    c["ok"] = c["out"] == n and c["err"] == n and not mixed and \
        (runner != "hog" or (c["success_markers"] == n and not c["folder_id_mismatch"]))
    return c


def new_run(runner, wl, rep, opts, base):
    spec = WORKLOADS[wl]
    n = opts.n or (spec["quick_n"] if opts.quick else spec["n"])
    run_dir = base / f"{wl}-{runner}-r{rep}"
    run_dir.mkdir(parents=True)
    token, tags = uuid.uuid4().hex[:12], Tags()
    logf = run_dir / "results.log"
    logf.touch()
    job = base / "job.sh"
    with open(run_dir / "jobs.txt", "w") as f:
        for i in range(n):
            f.write(f"{JOB_VAR}={tags.job} {shlex.quote(str(job))} {shlex.quote(str(logf))} "
                    f"{i} {spec['dur']:g} {token}\n")
    rec = dict(runner=runner, workload=wl, rep=rep, n=n, slots=",".join(opts.slots_list),
               nproc=NPROC, host=platform.node(), loadavg=os.getloadavg()[0], ok=False,
               error=None)
    return dict(spec=spec, n=n, dir=run_dir, token=token, tags=tags, log=logf, rec=rec)


def run_one(runner, wl, rep, opts, base):
    r = new_run(runner, wl, rep, opts, base)
    rec, run_dir, tags, slots = r["rec"], r["dir"], r["tags"], opts.slots_list
    argv, stdin, extra_env = command_for(runner, run_dir / "jobs.txt", slots, opts)
    rec["argv"] = " ".join(shlex.quote(a) for a in argv)
    env = dict(os.environ, **extra_env)
    env[RUN_VAR] = tags.run
    rec["pre_busy_pct"] = cpu_busy_pct()
    try:
        sp = Spawned(argv, run_dir, env, stdin)
    except OSError as e:
        rec["error"] = f"could not start: {e}"
        return rec
    try:
        if wl in ("W1", "W2"):
            measure_batch(rec, r, sp, runner, wl, opts)
        elif wl == "W4":
            measure_scale(rec, r, sp, opts)
        else:
            measure_interrupt(rec, r, sp, runner, opts)
    finally:
        kill_everything(sp, tags)
        if not opts.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    if rec.get("rc") not in (0, None) and wl in ("W1", "W2"):
        rec["error"] = rec["error"] or f"exit code {rec['rc']}"
    return rec


def measure_batch(rec, r, sp, runner, wl, opts):
    n, slots = r["n"], opts.slots_list
    k = len(slots)
    if not sp.done.wait(opts.timeout):
        rec["error"] = f"timeout after {opts.timeout} s"
        return
    wall = (sp.t1 - sp.t0) / 1e9
    rec.update(rc=sp.rc, wall_s=round(wall, 4),
               cpu_s=round(sp.rusage.ru_utime + sp.rusage.ru_stime, 3))
    ends, _ = read_log(r["log"])
    sched = check_schedule(ends, n, slots)
    cap = check_capture(runner, r["dir"], n, r["token"])
    rec["checks"] = dict(schedule=sched, capture=cap)
    flat = [x for rs in ends.values() for x in rs]
    if not flat:
        rec["error"] = "no job ran"
        return
    first, last = min(x["s"] for x in flat), max(x["e"] for x in flat)
    body = [(x["e"] - x["s"]) / 1e9 for x in flat]
    m = dict(first_job_ms=(first - sp.t0) / 1e6, exit_after_last_ms=(sp.t1 - last) / 1e6,
             job_body_ms=1000 * statistics.mean(body))
    if wl == "W1":
        m.update(jobs_per_s=n / wall, ms_per_job=1000 * wall / n,
                 overhead_ms=1000 * k * wall / n - m["job_body_ms"],
                 cpu_ms_per_job=1000 * rec["cpu_s"] / n)
    else:
        inner = (last - first) / 1e9
        m.update(makespan_s=wall, ideal_s=-(-n // k) * WORKLOADS["W2"]["dur"], inner_s=inner,
                 gap_ms=1000 * (k * inner - sum(body)) / max(1, n - k))
    rec["metrics"] = {key: round(v, 3) for key, v in m.items()}
    rec["ok"] = sched["ok"] and cap["ok"] and sp.rc == 0


def measure_scale(rec, r, sp, opts):
    """Sample the runner's memory until it exits or the cap; then SIGTERM its group.
    Runner memory = PSS summed over the run's processes that are not jobs and are
    either the runner itself or have lived at least 0.5 s (workers, helpers): a
    per-job fork shows its parent's pages until it execs, so it would be counted
    twice.  peak_all_mb keeps everything that is not a job script."""
    tags, deadline = r["tags"], sp.t0 / 1e9 + opts.w4_cap
    peak = peak_all = 0
    at_1s = None
    samples = 0
    while not sp.done.is_set() and time.time() < deadline:
        procs = tags.scan(sp.pid)
        kb = {p: pss_kb(p) for p, v in procs.items() if not v["job"] and v["state"] != "Z"}
        runner_kb = sum(v for p, v in kb.items() if p == sp.pid or procs[p]["age_s"] >= 0.5)
        peak, peak_all = max(peak, runner_kb), max(peak_all, sum(kb.values()))
        if at_1s is None and time.time_ns() - sp.t0 >= 1e9:
            at_1s = runner_kb
        samples += 1
        sp.done.wait(opts.w4_interval)
    capped = not sp.done.is_set()
    t_term = time.time_ns()
    if capped:
        sp.signal_group(signal.SIGTERM)
        if not sp.done.wait(10):
            rec["error"] = "runner still alive 10 s after SIGTERM"
    ends, _ = read_log(r["log"])
    sched = check_schedule(ends, r["n"], opts.slots_list, expect_all=not capped)
    rec["checks"] = dict(schedule=sched)
    flat = [x for rs in ends.values() for x in rs]
    if not flat:
        rec["error"] = rec["error"] or "no job started before the cap"
        return
    first = min(x["s"] for x in flat)
    stop = t_term if capped else sp.t1
    rec["metrics"] = dict(
        first_job_ms=round((first - sp.t0) / 1e6, 1),
        peak_pss_mb=round(peak / 1024, 1), peak_all_mb=round(peak_all / 1024, 1),
        pss_1s_mb=None if at_1s is None else round(at_1s / 1024, 1),
        jobs_done=len(ends), jobs_per_s=round(len(ends) / max(1e-9, (stop - first) / 1e9), 1),
        capped=capped, samples=samples,
        term_exit_ms=round((sp.t1 - t_term) / 1e6, 1) if capped and sp.t1 else None)
    if sp.t1:
        rec["rc"] = sp.rc
    rec["ok"] = sched["ok"] and rec["error"] is None


def hog_status(run_dir, token, started_ids):
    """Which started jobs hog recorded as failed/interrupted."""
    by_id = {}
    for d in hog_folders(run_dir):
        f = info_fields(d)
        m = re.search(rf"\s(\d+)\s+\S+\s+{token}", f.get("command", ""))
        if m:
            by_id[int(m.group(1))] = (d, f.get("status"))
    res = dict(folders=len(by_id), started=len(started_ids), failure=0, interrupted=0,
               success=0, no_folder=0, statuses={})
    for i in started_ids:
        if i not in by_id:
            res["no_folder"] += 1
            continue
        d, st = by_id[i]
        res["failure"] += (d / "FAILURE").exists()
        res["success"] += (d / "SUCCESS").exists()
        res["interrupted"] += st == "interrupted"
    for d, st in by_id.values():
        res["statuses"][st] = res["statuses"].get(st, 0) + 1
    res["ok"] = (res["failure"] == res["interrupted"] == len(started_ids)
                 and not res["success"] and not res["no_folder"])
    return res


def measure_interrupt(rec, r, sp, runner, opts):
    tags, spec, k = r["tags"], r["spec"], len(opts.slots_list)
    want = min(k, r["n"])
    limit = time.time() + 30
    starts = {}
    while time.time() < limit and not sp.done.is_set():
        _, starts = read_log(r["log"])
        if len(starts) >= want:
            break
        time.sleep(0.05)
    w = dict(mode=spec["mode"], started_before=len(starts))
    rec["w5"] = w
    if len(starts) < want:
        rec["error"] = f"only {len(starts)} of {want} jobs started" + \
            (f" (runner exited {sp.rc})" if sp.done.is_set() else "")
        return
    time.sleep(0.5)
    snap = tags.scan(sp.pid)
    jobs0 = {p: v["start"] for p, v in snap.items() if v["job"]}
    other0 = {p: v["start"] for p, v in snap.items() if not v["job"] and p != sp.pid}
    scripts0 = {pid: snap[pid]["start"] for pid, _ in starts.values() if pid in snap}
    nsig = opts.w5_signals or (2 if runner == "hog" else 1)
    send = sp.signal_group if spec["mode"] == "group" else sp.signal_pid
    t_sig = time.time_ns()
    for i in range(nsig):
        if i:
            if sp.done.wait(1.0):
                break
        send(signal.SIGINT)
    w["signals_sent"] = nsig
    t_last = time.time_ns()
    sp.done.wait(5.0 - (time.time_ns() - t_last) / 1e9)
    time.sleep(max(0.0, 5.0 - (time.time_ns() - t_last) / 1e9))   # always the full 5 s
    _, starts_after = read_log(r["log"])
    w.update(runner_exited=sp.done.is_set(),
             exit_ms=round((sp.t1 - t_sig) / 1e6) if sp.done.is_set() else None,
             rc=sp.rc if sp.done.is_set() else None,
             jobs_running=len(scripts0),
             jobs_alive=sum(1 for p, s in scripts0.items() if is_alive(p, s)),
             job_procs=len(jobs0),
             job_procs_alive=sum(1 for p, s in jobs0.items() if is_alive(p, s)),
             other_procs_alive=sum(1 for p, s in other0.items() if is_alive(p, s)),
             new_jobs_after=sum(1 for _, s in starts_after.values() if s > t_sig))
    if runner == "hog":
        w["hog"] = hog_status(r["dir"], r["token"], sorted(starts_after))
    rec["ok"] = (w["job_procs_alive"] == 0 and w["new_jobs_after"] == 0
                 and (runner != "hog" or w["hog"]["ok"]))


# --------------------------------------------------------------------------- report
def med(vals, nd=1):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m, lo, hi = statistics.median(vals), min(vals), max(vals)

    def f(x):
        return f"{x:,.{nd}f}"

    return f(m) if lo == hi else f"{f(m)} ({f(lo)}-{f(hi)})"


def median_of(rs, fn):
    vals = [fn(r) for r in rs]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def mget(key):
    return lambda r: (r.get("metrics") or {}).get(key)


def wget(key):
    return lambda r: (r.get("w5") or {}).get(key)


COLUMNS = {
    "W1": [("jobs/s", mget("jobs_per_s"), 0), ("ms/job", mget("ms_per_job"), 2),
           ("overhead ms/job/slot", mget("overhead_ms"), 1),
           ("CPU ms/job", mget("cpu_ms_per_job"), 2), ("first job ms", mget("first_job_ms"), 0)],
    "W2": [("makespan s", mget("makespan_s"), 2), ("gap ms/handoff", mget("gap_ms"), 1),
           ("first job ms", mget("first_job_ms"), 0),
           ("exit after last job ms", mget("exit_after_last_ms"), 0)],
    "W4": [("first job ms", mget("first_job_ms"), 0), ("peak PSS MB", mget("peak_pss_mb"), 1),
           ("PSS at 1 s MB", mget("pss_1s_mb"), 1), ("jobs done", mget("jobs_done"), 0),
           ("jobs/s", mget("jobs_per_s"), 0), ("SIGTERM->exit ms", mget("term_exit_ms"), 0)],
    "W5": [("SIGINTs", wget("signals_sent"), 0), ("exit ms", wget("exit_ms"), 0),
           ("jobs running", wget("jobs_running"), 0),
           ("jobs alive after 5 s", wget("jobs_alive"), 0),
           ("job procs alive", wget("job_procs_alive"), 0),
           ("other procs alive", wget("other_procs_alive"), 0),
           ("new jobs after", wget("new_jobs_after"), 0)],
}
COLUMNS["W5g"] = COLUMNS["W5"]


def check_note(r):
    if r.get("error") and not r.get("checks") and not r.get("w5"):
        return r["error"]
    parts = []
    c = r.get("checks") or {}
    s = c.get("schedule")
    if s:
        parts.append(f"ran {s['ran']} dup {s['dup']} badCVD {s['bad_cvd']} "
                     f"max/GPU {s['max_per_gpu']}"
                     + (f" OVER {s['over_limit']}" if s["over_limit"] else "")
                     + (f" missing {s['missing']}" if s["missing"] else ""))
    cap = c.get("capture")
    if cap:
        parts.append(f"out {cap['out']} err {cap['err']} mixed {cap['mixed']}"
                     + (f" SUCCESS {cap['success_markers']}" if "success_markers" in cap else ""))
    w = r.get("w5") or {}
    if w.get("hog"):
        h = w["hog"]
        parts.append(f"started {h['started']}: FAILURE {h['failure']}, interrupted "
                     f"{h['interrupted']}, statuses {h['statuses']}")
    if w.get("rc") is not None:
        parts.append(f"rc {w['rc']}")
    elif w:
        parts.append("runner still running after 5 s")
    if r.get("rc") not in (None, 0):
        parts.append(f"rc {r['rc']}")
    if r.get("error"):
        parts.append(r["error"])
    return "; ".join(parts)


def report(records):
    lines = []
    by = {}
    for r in records:
        by.setdefault(r["workload"], {}).setdefault(r["runner"], []).append(r)
    for wl in [w for w in WORKLOADS if w in by]:
        n = by[wl][next(iter(by[wl]))][0]["n"]
        lines.append(f"\n### {wl}: {WORKLOADS[wl]['desc']} (n={n:,})\n")
        cols = COLUMNS[wl]
        lines.append("| runner | ok | " + " | ".join(c for c, _, _ in cols)
                     + " | checks (last rep) |")
        lines.append("|---" * (len(cols) + 3) + "|")
        for name in sorted(by[wl], key=lambda x: (RUNNERS.index(x) if x in RUNNERS else 9, x)):
            rs = by[wl][name]
            ok = f"{sum(1 for r in rs if r.get('ok'))}/{len(rs)}"
            cells = [med([f(r) for r in rs], nd) for _, f, nd in cols]
            lines.append(f"| {name} | {ok} | " + " | ".join(cells) + f" | {check_note(rs[-1])} |")
    lines.append(ratio_table(by))
    return "\n".join(lines) + "\n"


# (workload, metric, value, ratio shown): counts of survivors get no ratio
RATIOS = [("W1", "jobs/s (higher is better)", mget("jobs_per_s"), True),
          ("W1", "overhead ms/job/slot", mget("overhead_ms"), True),
          ("W2", "gap ms/handoff", mget("gap_ms"), True),
          ("W4", "first job ms", mget("first_job_ms"), True),
          ("W4", "peak PSS MB", mget("peak_pss_mb"), True),
          ("W5", "job procs alive 5 s after SIGINT", wget("job_procs_alive"), False),
          ("W5g", "job procs alive 5 s after SIGINT", wget("job_procs_alive"), False)]


def ratio_table(by):
    rows = ["\n### hog against the others (medians)\n",
            "| workload | metric | hog | xargs | parallel | hog/xargs | hog/parallel |",
            "|---|---|---|---|---|---|---|"]
    shown = False
    for wl, label, fn, show in RATIOS:
        if wl not in by or "hog" not in by[wl]:
            continue
        vals = {name: median_of(by[wl].get(name, []), fn) for name in RUNNERS}

        def ratio(other):
            h, o = vals["hog"], vals[other]
            if h is None or o is None or not show:
                return "-"
            return f"{h / o:.2f}" if o else ("=" if h == 0 else "inf")

        def cell(v):
            return "-" if v is None else f"{v:,.1f}"

        rows.append(f"| {wl} | {label} | {cell(vals['hog'])} | {cell(vals['xargs'])} | "
                    f"{cell(vals['parallel'])} | {ratio('xargs')} | {ratio('parallel')} |")
        shown = True
    return "\n".join(rows) if shown else ""


# --------------------------------------------------------------------------- main
def reset_inherited_signals():
    """Started in the background (`cmd &`, nohup), this process and everything it
    starts would inherit an *ignored* SIGINT, and W5 would measure nothing."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runner", action="append", choices=RUNNERS,
                    help="repeatable; default: hog, xargs and parallel (if installed)")
    ap.add_argument("--workload", action="append", choices=list(WORKLOADS),
                    help="repeatable; default: all (W1 W2 W4 W5 W5g)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 200 W1 jobs, 20 W2 jobs, W4 cap 5 s, 1 rep")
    ap.add_argument("--slots", default="0,0,1,1", help="GPU id per slot (default 0,0,1,1)")
    ap.add_argument("--n", type=int, help="override the number of jobs of every workload")
    ap.add_argument("--w4-cap", type=float, help="W4: SIGTERM the runner after this many s "
                    "(default 20; 5 with --quick)")
    ap.add_argument("--w4-reps", type=int,
                    help="W4 repetitions (default 1: each run takes the full cap; 3 for medians)")
    ap.add_argument("--w4-interval", type=float, default=0.2, help="W4: memory sampling period (s)")
    ap.add_argument("--w5-signals", type=int,
                    help="W5: SIGINTs to send, 1 s apart (default: 2 for hog, which drains on "
                         "the first, 1 for the others)")
    ap.add_argument("--timeout", type=float, default=600, help="W1/W2: per-run limit (s)")
    ap.add_argument("--hog", default=os.environ.get("HOG", "hog"),
                    help="command that starts hog (default: hog; e.g. 'python3 -m hog')")
    ap.add_argument("--hog-args", default="", help="extra hog arguments, e.g. '-q'")
    ap.add_argument("--out", help="append one JSON line per run to this file")
    ap.add_argument("--report", nargs="+", metavar="JSONL", help="print tables from saved results")
    ap.add_argument("--keep", action="store_true", help="keep the temporary run directories")
    opts = ap.parse_args(argv)
    if opts.reps is None:
        opts.reps = 1 if opts.quick else 3
    if opts.w4_reps is None:
        opts.w4_reps = min(1, opts.reps)
    if opts.w4_cap is None:
        opts.w4_cap = 5.0 if opts.quick else 20.0
    opts.slots_list = [s.strip() for s in opts.slots.split(",") if s.strip()]
    if not opts.slots_list:
        ap.error("--slots: no slots")
    return opts


def uptime_line():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None):
    opts = parse_args(argv)
    if opts.report:
        recs = []
        for p in opts.report:
            with open(p) as f:
                recs += [json.loads(line) for line in f if line.strip()]
        print(report(recs))
        return 0
    reset_inherited_signals()
    runners = []
    for name in opts.runner or RUNNERS:
        ok, info = available(name, opts)
        log(f"# {name}: {info}")
        if ok:
            runners.append(name)
        elif opts.runner:
            log(f"# {name} is not available: {info}")
            return 2
    if not runners:
        log("# no runner available")
        return 2
    workloads = opts.workload or list(WORKLOADS)
    base = Path(tempfile.mkdtemp(prefix="hog-bench-"))
    job = base / "job.sh"
    job.write_text(JOB_SH)
    job.chmod(0o755)
    start_uptime = uptime_line()
    log(f"# {platform.node()} nproc={NPROC} slots={opts.slots} reps={opts.reps} "
        f"w4_reps={opts.w4_reps} dir={base}")
    log(f"# before: {start_uptime}")
    records, t_start = [], time.time()
    try:
        for wl in workloads:
            for rep in range(1, (opts.w4_reps if wl == "W4" else opts.reps) + 1):
                # interleave runners inside each repetition, rotating who goes first
                order = runners[(rep - 1) % len(runners):] + runners[:(rep - 1) % len(runners)]
                for name in order:
                    t = time.time()
                    rec = run_one(name, wl, rep, opts, base)
                    records.append(rec)
                    if opts.out:
                        with open(opts.out, "a") as f:
                            f.write(json.dumps(rec) + "\n")
                    brief = rec.get("metrics") or rec.get("w5") or {}
                    log(f"{wl:3s} {name:8s} rep {rep} ok={rec['ok']} err={rec.get('error')} "
                        f"{json.dumps(brief)[:180]} ({time.time() - t:.1f} s)")
                    time.sleep(0.3)
    except KeyboardInterrupt:
        log("# interrupted: reporting what finished")
    finally:
        if opts.keep:
            log(f"# kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"# {platform.node()}, {NPROC} CPUs, slots {opts.slots}, {opts.reps} rep(s), "
          f"{time.time() - t_start:.0f} s; medians (min-max)")
    print(f"# before: {start_uptime}")
    print(f"# after:  {uptime_line()}")
    for name in runners:
        print(f"# {name}: {available(name, opts)[1]}")
    print(report(records))
    # the peers' failures are findings (xargs leaves jobs behind in W5); hog's are errors
    return 0 if all(r.get("ok") for r in records if r["runner"] == "hog") else 1


if __name__ == "__main__":
    sys.exit(main())
