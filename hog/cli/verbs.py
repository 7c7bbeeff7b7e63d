"""Verbs that act on a sweep's output directory from any shell, through its store:
``status``, ``add``, ``stop``, ``kill``, ``retry``, ``gpus DIR SPEC``.

They only read or write the store; live runners notice the change within their
next tick (0.5 s) and act on it.
"""
import argparse
import json
import os
import shlex
import sys
import time
from typing import List

from hog.cli import dir_parser
from hog.humanize import fmt_duration, shown_path
from hog.errors import UsageError
from hog.state.jobdir import STATE_DIR, Layout
from hog.state.store import Store, runner_alive


def open_store(directory: str, create: bool = False) -> Store:
    if not os.path.isdir(directory):
        if not create:
            raise UsageError(f"{directory}: no such directory")
        os.makedirs(directory, exist_ok=True)
    return Store(os.path.join(directory, STATE_DIR), create=create)


# ----------------------------------------------------------------- status
def status_data(store: Store, directory: str, failed_limit: int = 1000) -> dict:
    """What ``hog status --json`` prints. Its keys are always there (``counts`` has every
    status, zeros included), so scripts can rely on them."""
    from hog.model import Status
    now = time.time()
    layout = Layout(directory, store.meta("prefix") or "job_")
    runners = []
    for r in store.active_runners():
        runners.append(dict(id=r.id, pid=r.pid, host=r.host, gpus=r.gpus,
                            alive=runner_alive(r), started=r.started,
                            heartbeat_age_s=round(now - r.heartbeat, 1), request=r.request))
    alive = {r["id"] for r in runners if r["alive"]}
    running = [dict(id=r.id, name=r.name or layout.folder_name(r.id),
                    folder=layout.folder_name(r.id), slot=r.slot, gpus=r.gpus,
                    pid=r.pid, runner=r.runner, runner_alive=r.runner in alive,
                    attempt=r.attempt,
                    elapsed_s=None if r.started is None else round(now - r.started, 1),
                    command=r.command)
               for r in store.rows_with_status("running")]
    failed = []
    for status in ("failed", "timeout", "interrupted", "unschedulable", "skipped"):
        for r in store.rows_with_status(status, failed_limit):
            failed.append(dict(id=r.id, name=r.name or layout.folder_name(r.id),
                               folder=layout.folder_name(r.id), status=r.status,
                               exit_code=r.exit_code, signal=r.signal, attempt=r.attempt,
                               gpus=r.gpus, slot=r.slot, started=r.started, ended=r.ended,
                               note=r.note))
    failed.sort(key=lambda f: f["id"])
    found = store.counts()
    counts = {s.value: found.pop(s.value, 0) for s in Status}
    counts.update(found)
    return dict(output_dir=directory, source=store.meta("source"),
                schema_version=store.schema_version(), time=now, total=sum(counts.values()),
                counts=counts, runners=runners, running=running, failed=failed[:failed_limit])


def cmd_status(argv: List[str]) -> int:
    p = dir_parser("status", "Counts per status, running jobs, failed jobs.")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    args = p.parse_args(argv)
    store = open_store(args.dir)
    data = status_data(store, args.dir)
    if args.json:
        json.dump(data, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    layout = Layout(args.dir, store.meta("prefix") or "job_")
    counts = data["counts"]
    total = sum(counts.values())
    order = ("queued", "running", "succeeded", "failed", "timeout", "interrupted", "cancelled",
             "skipped", "unschedulable")
    parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
    print(f"{args.dir}: {total} job(s): {', '.join(parts) or 'none'}")
    if data["source"]:
        print(f"source: {data['source']}")
    live = [r for r in data["runners"] if r["alive"]]
    for r in live:
        print(f"runner {r['id']}: pid {r['pid']} on {r['host']}, gpus {r['gpus']}"
              + (f", asked to {r['request']}" if r["request"] else ""))
    if not live:
        print("no runner is active" + (f"; start one to run the {counts['queued']} queued job(s)"
                                       if counts.get("queued") else ""))
    if data["running"]:
        print("running:")
        for r in data["running"]:
            print(f"  {r['name']:<16} slot {r['slot']}  gpus {r['gpus'] or '-':<6} "
                  f"pid {r['pid'] or '-':<8} {fmt_duration(r['elapsed_s'])}"
                  + ("" if r["runner_alive"] else
                     "  (its runner is gone: the next runner on this directory runs it again)"))
    if data["failed"]:
        print("failed:")
        for f in data["failed"][:20]:
            how = f"exit {f['exit_code']}" if f["exit_code"] is not None else \
                (f"killed by {f['signal']}" if f["signal"] else f["status"])
            name = f["name"] or layout.folder_name(f["id"])
            print(f"  {name:<16} {f['status']:<13} {how:<18} "
                  f"{shown_path(layout.err_path(f['id']))}")
        if len(data["failed"]) > 20:
            print(f"  ... and {len(data['failed']) - 20} more (hog status --json lists all)")
    return 0


# -------------------------------------------------------------------- add
def cmd_add(argv: List[str]) -> int:
    p = argparse.ArgumentParser(
        prog="hog add", description="Queue more jobs in a sweep; a running runner starts "
        "them within a second, otherwise the next runner on DIR does.",
        usage="hog add DIR [options] (-- COMMAND... | --job_file FILE)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--job_file", "--job-file", dest="job_file", metavar="FILE")
    for opt in ("name", "gpus", "priority", "timeout", "retries", "after", "gpu_ids"):
        p.add_argument(f"--{opt}")
    p.add_argument("--resources", metavar="'NAME=N ...'")
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    else:
        command = []
    args = p.parse_args(argv)
    from hog.model import Job
    from hog.sources.joboptions import job_kwargs
    from hog.sources.text import check_readable, text_jobs
    if bool(command) == bool(args.job_file):
        raise UsageError("hog add: give a command after '--', or --job_file FILE (not both)")
    raw = {k: getattr(args, k) for k in ("name", "gpus", "priority", "timeout", "retries",
                                         "after", "gpu_ids") if getattr(args, k) is not None}
    if args.resources:
        from hog.cli import parse_resources
        raw["resources"] = dict(parse_resources(args.resources))
    options = job_kwargs(raw, "hog add")
    if command:
        text = command[0] if len(command) == 1 else shlex.join(command)
        jobs = [Job(index=0, command=text, where="hog add", **options)]
    else:
        check_readable(args.job_file, "job file")
        if args.job_file.lower().endswith((".yaml", ".yml")):
            from hog.sources.yaml import yaml_jobs
            read = yaml_jobs
        else:
            read = text_jobs
        jobs = [Job(**{**j.__dict__, **options}) for j in read(args.job_file)]
    store = open_store(args.dir, create=True)
    ids = store.add(jobs)
    live = store.live_runners()
    where = "a running runner will start them" if live else \
        "no runner is active; they run when one starts on this directory"
    span = f"{ids[0]}" if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"
    print(f"hog: added {len(ids)} job(s) (#{span}); {where}")
    return 0


# ------------------------------------------------------------ stop / kill
def cmd_stop(argv: List[str]) -> int:
    p = dir_parser("stop", "Stop the runners of a sweep: by default they start nothing new "
                        "and let running jobs finish; --now terminates running jobs.")
    p.add_argument("--now", action="store_true", help="terminate running jobs too")
    args = p.parse_args(argv)
    store = open_store(args.dir)
    n = store.request("kill" if args.now else "drain")
    if n == 0:
        print(f"hog: no runner is active on {args.dir}")
        return 0
    print(f"hog: asked {n} runner(s) to " + ("terminate running jobs and stop" if args.now
                                           else "finish running jobs and stop"))
    return 0


def _resolve(store: Store, refs: List[str]) -> List[int]:
    ids = []
    for ref in refs:
        rows = store.find(ref)
        if not rows:
            raise UsageError(f"no job {ref!r} in this sweep (give a job number, folder name "
                             f"or job name)")
        ids.extend(r.id for r in rows)
    return ids


def cmd_kill(argv: List[str]) -> int:
    p = dir_parser("kill", "Cancel jobs: a queued one never starts, a running one is "
                        "terminated. Cancelled jobs are not retried.")
    p.add_argument("jobs", nargs="+", metavar="JOB", help="job number, folder name or name")
    args = p.parse_args(argv)
    store = open_store(args.dir)
    for jid in _resolve(store, args.jobs):
        what = store.cancel(jid)
        print(f"hog: job {jid}: " + {"cancelled": "cancelled",
                                      "stopping": "being terminated by its runner"}.get(
            what, f"already {what}, left as it is"))
    return 0


def cmd_retry(argv: List[str]) -> int:
    p = dir_parser("retry", "Queue finished jobs again: the failed ones, or those named.")
    p.add_argument("jobs", nargs="*", metavar="JOB")
    p.add_argument("--failed", action="store_true",
                   help="every failed, timed-out, interrupted or unschedulable job")
    args = p.parse_args(argv)
    if bool(args.jobs) == args.failed:
        raise UsageError("hog retry: give --failed or job names/numbers (not both)")
    store = open_store(args.dir)
    ids = store.failed_ids() if args.failed else _resolve(store, args.jobs)
    done = store.retry(ids)
    print(f"hog: queued {len(done)} job(s) again"
          + ("" if store.live_runners() else "; no runner is active, start one to run them"))
    skipped = sorted(set(ids) - set(done))
    if skipped:
        print(f"hog: left alone (queued or running already, or succeeded): "
              f"{', '.join(map(str, skipped[:20]))}" + (" ..." if len(skipped) > 20 else ""))
    return 0


# --------------------------------------------------------------- gpus DIR
def cmd_set_gpus(argv: List[str]) -> int:
    p = dir_parser("gpus", "Change the GPU slots of a live runner: new slots take jobs within "
                        "a second, removed slots finish their job and retire.")
    p.add_argument("spec", metavar="SPEC", help="the new --gpus spec, e.g. 0,0,1,2")
    p.add_argument("--runner", type=int, help="which runner, when several are active")
    args = p.parse_args(argv)
    from hog.gpus.spec import parse_gpus
    parse_gpus(args.spec, lambda: [])   # validate now; the runner resolves 'all' itself
    store = open_store(args.dir)
    live = store.live_runners()
    if args.runner is not None:
        live = [r for r in live if r.id == args.runner]
    if not live:
        raise UsageError(f"no active runner on {args.dir}" +
                         (f" with id {args.runner}" if args.runner is not None else ""))
    if len(live) > 1:
        raise UsageError(f"{len(live)} runners are active ({', '.join(str(r.id) for r in live)});"
                         f" pick one with --runner ID")
    store.request_gpus(live[0].id, args.spec)
    print(f"hog: runner {live[0].id} (pid {live[0].pid}) will use --gpus {args.spec}")
    return 0
