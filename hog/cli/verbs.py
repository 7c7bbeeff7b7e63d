"""The verbs that act on a sweep's output directory from any shell (``status``, ``add``,
``stop``, ``kill``, ``retry``, ``attach``, ``logs``, ``report``; ``gpus`` is
``hog.cli.gpus``'s): each parses
its arguments and calls the store or a view.

The ones that change something only write the store; live runners notice the change
within their next tick (0.5 s) and act on it.
"""
import argparse
import dataclasses
import itertools
import json
import os
import sqlite3
import sys
from typing import Any, Callable, Dict, Iterable, Iterator, List

from hog.cli.parsers import (
    DEFAULT_DIR,
    DIR_HELP,
    _flag,
    check_default_dir,
    dir_parser,
    make_parser,
    take_dir,
)
from hog.errors import EXIT_INT, HogError, UsageError
from hog.model import Job
from hog.state.files import check_location
from hog.state.jobdir import STATE_DIR, Layout
from hog.state.queuecheck import SAMPLE, check_output, check_queue
from hog.state.reading import open_sweep
from hog.state.store import Store

# Only what ``hog add``, ``status``, ``stop`` and ``kill`` need is imported here (the
# store, and what they print with); what one other verb or option needs (the GPU
# discovery, the job files' readers, the run's options) is imported where it is used.


def open_store(directory: str, create: bool = False) -> Store:
    """The store of the sweep in ``directory`` (``UsageError`` if there is none, or if
    its job folders are not what its queue records: checked before anything is
    written, ``create`` included: one another user could swap is made nowhere). The
    check looks up a sample of the folders, so it costs the same at any sweep size;
    a sweep's own check, before it runs anything, looks up every one."""
    if create:
        check_location(directory, "hog add:")
    if not os.path.isdir(directory):
        if not create:
            raise UsageError(f"{directory}: no such directory")
        os.makedirs(directory, exist_ok=True)
    elif create:
        check_output(Layout(directory), directory, SAMPLE)
    else:
        check_queue(directory, sample=SAMPLE)
    return Store(os.path.join(directory, STATE_DIR), create=create)


# ----------------------------------------------------------------- status
def status_parser() -> argparse.ArgumentParser:
    p = dir_parser("status", "Counts per status, running jobs, failed jobs.")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    return p


def cmd_status(argv: List[str]) -> int:
    from hog.views.status import status_data, status_lines  # only for this verb
    args = status_parser().parse_args(argv)
    store = open_store(check_default_dir("status", args.dir))
    data = status_data(store, args.dir, finished_limit=1000 if args.json else 0)
    if args.json:
        json.dump(data, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for line in status_lines(data, args.dir, store.meta("prefix") or "job_"):
        print(line)
    return 0


# -------------------------------------------------------------------- add
ADD_OPTIONS = (  # each job option hog add takes: (name, short forms, metavar, help)
    ("name", ("-n",), "NAME", "the job's name (one job only; names are unique in a sweep)"),
    ("gpus", ("-g",), "N", "how many GPUs each job needs (0: CPU-only)"),
    ("priority", ("-p",), "N", "higher starts first (default 0)"),
    ("timeout", ("-t",), "DURATION", "end a job still running after this long: 90s, 30m, 4h"),
    ("retries", (), "N", "run a failed job again up to N times"),
    ("after", (), "NAMES", "comma-separated names of jobs that must succeed first"),
    ("gpu_ids", (), "IDS", "run only on these GPU ids, e.g. 0,1"),
    ("resources", (), "'NAME=N ...'", "named resources each job needs, e.g. 'license=1 disk=2'"),
    ("memory", (), "SIZE", "GPU memory each job needs per GPU, e.g. 20G (packs jobs onto a GPU)"),
    ("cwd", (), "DIR", "the directory each job runs in"),
)


def add_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "hog add", "Queue more jobs in a sweep; a running runner starts "
        "them within a second, otherwise the next runner on DIR does. The options set "
        "each added job's options (as '# hog: ...' does in a job file).",
        usage="hog add [DIR] [options] (-- COMMAND... | --job-file FILE)")
    p.add_argument("dir", metavar="DIR", nargs="?", default=DEFAULT_DIR,
                   help=DIR_HELP + "; created if need be")
    _flag(p, "job_file", "-j", metavar="FILE",
          help="add every job of this job file (text, or .yaml)")
    for opt, short, metavar, text in ADD_OPTIONS:
        _flag(p, opt, *short, metavar=metavar, help=text)
    _flag(p, "env", metavar="NAME=VALUE", action="append",
          help="set a variable in each job's environment (repeat for more)")
    return p


def cmd_add(argv: List[str]) -> int:
    p = add_parser()
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    else:
        command = []
    args = p.parse_args(argv)
    if bool(command) == bool(args.job_file):
        raise UsageError("hog add: give a command after '--', or --job_file FILE (not both)")
    raw = {k: getattr(args, k) for k in [o[0] for o in ADD_OPTIONS] + ["env"]
           if getattr(args, k) is not None}
    if args.resources:
        from hog.config import parse_resources  # loads the run's options: only for these
        raw["resources"] = dict(parse_resources(args.resources))
    options: Dict[str, Any] = {}
    if raw:
        from hog.sources.joboptions import job_kwargs  # loads the job sources: only here
        options = job_kwargs(raw, "hog add")
    if command:
        import shlex  # only for a command given as several words
        text = command[0] if len(command) == 1 else shlex.join(command)
        if not text.strip():
            raise UsageError("hog add: the command after '--' is empty")
        jobs: Iterator[Job] = iter([Job(index=0, command=text, where="hog add", **options)])
    else:
        jobs = _file_jobs(args.job_file, options)
    first = next(jobs, None)      # a file's first error, before anything is created
    if first is None:
        raise UsageError(f"hog add: {args.job_file}: the job file holds no job")
    store = open_store(args.dir, create=True)
    ids = store.add_stream(itertools.chain([first], jobs))     # read as it is stored
    live = store.live_runners()
    where = "a running runner will start them" if live else \
        "no runner is active; they run when one starts on this directory"
    span = f"{ids[0]}" if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"
    print(f"hog: added {len(ids)} job(s) (#{span}); {where}")
    return 0


def _file_jobs(path: str, options: Dict[str, Any]) -> Iterator[Job]:
    """The jobs of a job file, one at a time, with ``hog add``'s options."""
    from hog.sources.text import check_readable, text_jobs  # only for --job_file
    check_readable(path, "job file")
    read: Callable[[str], Iterable[Job]] = text_jobs
    if path.lower().endswith((".yaml", ".yml")):
        from hog.sources.yaml import yaml_jobs  # imports yaml: only for YAML files
        read = yaml_jobs
    if not options:
        yield from read(path)
        return
    for job in read(path):
        yield dataclasses.replace(job, **options)


# ---------------------------------------------------------------- rebuild
def rebuild_parser() -> argparse.ArgumentParser:
    p = dir_parser(
        "rebuild", "Rebuild a sweep's queue (DIR/.hog/hog.sqlite) from its job folders, "
        "when it is missing, empty, corrupt or replaced: each folder's INFO gives its job's "
        "command, options, attempts and final status (SUCCESS: succeeded; no marker: "
        "interrupted, so the next run runs it again). A database that is there is moved "
        "aside (hog.sqlite.broken-TIME), never deleted.")
    p.add_argument("--force", action="store_true",
                   help="rebuild even a queue that records every job folder")
    return p


def cmd_rebuild(argv: List[str]) -> int:
    args = rebuild_parser().parse_args(argv)
    if not os.path.isdir(check_default_dir("rebuild", args.dir)):
        raise UsageError(f"{args.dir}: no such directory")
    from hog.state.rebuild import rebuild  # only for this verb
    done = rebuild(args.dir, force=args.force)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(done.counts.items()))
    print(f"hog: rebuilt the queue of {args.dir}/ from {sum(done.counts.values())} job "
          f"folder(s) ({done.prefix}N): {counts}")
    if done.moved_to:
        print(f"hog: the old database was moved to {done.moved_to}")
    print("hog: run the sweep again to run what had not succeeded (jobs that never "
          "started have no folder: the sweep's source queues them again; those queued "
          "with hog add must be added again)")
    return 0


# ------------------------------------------------------------ stop / kill
def stop_parser() -> argparse.ArgumentParser:
    p = dir_parser("stop", "Stop the runners of a sweep: by default they start nothing new "
                        "and let running jobs finish; --now terminates running jobs.")
    p.add_argument("--now", action="store_true", help="terminate running jobs too")
    return p


def cmd_stop(argv: List[str]) -> int:
    args = stop_parser().parse_args(argv)
    store = open_store(check_default_dir("stop", args.dir))
    n = store.request("kill" if args.now else "drain")
    if n == 0:
        print(f"hog: no runner is active on {args.dir}")
        return 0
    print(f"hog: asked {n} runner(s) to " + ("terminate running jobs and stop" if args.now
                                           else "finish running jobs and stop"))
    return 0


def _resolve(store: Store, refs: List[str]) -> List[int]:
    ids: List[int] = []
    for ref in refs:
        rows = store.find(ref)
        if not rows:
            raise UsageError(f"no job {ref!r} in this sweep (give a job number, folder name "
                             f"or job name)")
        ids.extend(r.id for r in rows)
    return ids


DIR_WORD = (f"DIR: {DIR_HELP}; the first word is DIR when that directory holds a "
            "sweep (DIR/.hog/)")


def kill_parser() -> argparse.ArgumentParser:
    p = make_parser("hog kill", "Cancel jobs: a queued one never starts, a running one is "
                    "terminated. Cancelled jobs are not retried.", epilog=DIR_WORD,
                    usage="hog kill [-h] [DIR] JOB [JOB ...]")
    p.add_argument("jobs", nargs="+", metavar="JOB", help="job number, folder name or name "
                   "(after DIR, when given)")
    return p


def cmd_kill(argv: List[str]) -> int:
    args = kill_parser().parse_args(argv)
    directory, jobs = take_dir(args.jobs)
    if not jobs:
        raise UsageError("hog kill: give the jobs to cancel (number, folder name or name)")
    store = open_store(check_default_dir("kill", directory))
    for jid in _resolve(store, jobs):
        what = store.cancel(jid)
        print(f"hog: job {jid}: " + {"cancelled": "cancelled",
                                      "stopping": "being terminated by its runner"}.get(
            what, f"already {what}, left as it is"))
    return 0


def retry_parser() -> argparse.ArgumentParser:
    p = make_parser("hog retry", "Queue finished jobs again: the failed ones, or those "
                    "named.", epilog=DIR_WORD, usage="hog retry [-h] [DIR] (--failed | JOB ...)")
    p.add_argument("jobs", nargs="*", metavar="JOB", help="job number, folder name or name "
                   "(after DIR, when given)")
    p.add_argument("--failed", action="store_true",
                   help="every failed, timed-out, interrupted or unschedulable job")
    return p


def cmd_retry(argv: List[str]) -> int:
    args = retry_parser().parse_args(argv)
    directory, jobs = take_dir(args.jobs)
    if bool(jobs) == args.failed:
        raise UsageError("hog retry: give --failed or job names/numbers (not both)")
    store = open_store(check_default_dir("retry", directory))
    ids = store.failed_ids() if args.failed else _resolve(store, jobs)
    done = store.retry(ids)
    print(f"hog: queued {len(done)} job(s) again"
          + ("" if store.live_runners() else "; no runner is active, start one to run them"))
    skipped = sorted(set(ids) - set(done))
    if skipped:
        print(f"hog: left alone (queued or running already, or succeeded): "
              f"{', '.join(map(str, skipped[:20]))}" + (" ..." if len(skipped) > 20 else ""))
    return 0


# ----------------------------------------------------------- attach / logs
def attach_parser() -> argparse.ArgumentParser:
    p = dir_parser(
        "attach",
        "Show the live dashboard of a sweep whose runner was started elsewhere "
        "(with --detach, or in another SSH session). Leaving it (q or Ctrl-C) "
        "never stops the runner. Without a terminal: plain lines, one per job "
        "start and end. Exits 0 when the runner ends.")
    p.add_argument("--plain", action="store_true",
                   help="plain lines even on a terminal")
    return p


def cmd_attach(argv: List[str]) -> int:
    args = attach_parser().parse_args(argv)
    store = open_sweep(check_default_dir("attach", args.dir))
    try:
        from hog.views.attach import attach  # the dashboard's modules: only for this verb
        return attach(args.dir, store, plain=args.plain)
    finally:
        store.close()


def logs_parser() -> argparse.ArgumentParser:
    p = dir_parser(
        "logs", "Print a job's standard output (or, with --err, its "
        "standard error); with -f, keep printing what it writes until it ends.",
        epilog=f"DIR: {DIR_HELP}; with one word, that word is JOB")
    p.add_argument("job", metavar="JOB", help="job number, folder name (job_7) or job name")
    p.add_argument("-e", "--err", action="store_true", help="standard error (.ERR) instead")
    p.add_argument("-f", "--follow", action="store_true",
                   help="follow the output as it grows; exit once the job has ended")
    return p


def cmd_logs(argv: List[str]) -> int:
    args = logs_parser().parse_args(argv)
    store = open_sweep(check_default_dir("logs", args.dir))
    try:
        from hog.views.logs import show_logs  # only for this verb
        return show_logs(store, args.dir, args.job, err=args.err, follow=args.follow)
    except KeyboardInterrupt:
        return EXIT_INT
    finally:
        store.close()


# ----------------------------------------------------------------- report
def report_parser() -> argparse.ArgumentParser:
    p = dir_parser(
        "report", "Write DIR/report.html: a self-contained page with "
        "the sweep's summary, a timeline of every job per slot, GPU-slot use over time, "
        "durations and each failed job's stderr (also rewrites DIR/results.jsonl and "
        "results.csv). Works while runners are active; never writes the queue.")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write the page "
                   "(default: DIR/report.html)")
    return p


def cmd_report(argv: List[str]) -> int:
    args = report_parser().parse_args(argv)
    try:
        from hog.views.report import write_report  # the page's renderer: only for this verb
        path = write_report(check_default_dir("report", args.dir), args.output)
    except OSError as e:            # e.g. the store or a folder cannot be read
        raise UsageError(f"{e.filename or args.dir}: {e.strerror}") from None
    except sqlite3.Error as e:
        raise HogError(f"{args.dir}: cannot read the sweep's queue ({e})") from None
    print(path)
    return 0
