"""``hog --job-file F ...`` (the sweep), ``hog run DIR`` (a queue without a source)
and ``hog watch DIR``: their parsers, and the conversion of what argparse gives into a
checked ``RunConfig`` (``hog.config``).

``hog run DIR`` takes every option of a sweep but the source and ``--output-dir``: it
runs what ``DIR``'s queue holds (jobs added with ``hog add``, or a sweep's queued jobs)
without reading any job source, even one the sweep recorded.
"""
import argparse
import os
from typing import Any, List, Optional

from hog import __version__
from hog.cli.parsers import (
    DEFAULT_DIR,
    HogParser,
    _flag,
    check_default_dir,
    is_sweep,
    make_parser,
)
from hog.config import RunConfig, build_config, file_source
from hog.errors import UsageError
from hog.sources import SourceSpec
from hog.state.jobdir import STATE_DIR

DESCRIPTION = """\
Run every job of a job file (one bash command per line) or of a Python yielder,
one job per GPU slot at a time, each pinned with CUDA_VISIBLE_DEVICES, each with
its own folder: <output_dir>/job_N/ holding INFO, job_N.OUT, job_N.ERR and, once
it ended, SUCCESS or FAILURE.
"""

EPILOG = """\
examples:
  hog --job-file jobs.txt --gpus 0,1          one job at a time on GPU 0 and on GPU 1
  hog -j jobs.txt -g 0,0,1                    two jobs at once on GPU 0, one on GPU 1
  hog -j jobs.txt -g 0-3x2 -o runs/lr         two slots on each of GPUs 0 to 3
  hog --job-yielder sweep.py --gpus all       jobs from sweep.py's yielder(), every GPU

job files: '-' is standard input, read as it comes (jobs start before it is closed).
Blank lines and lines starting with # are skipped; a trailing backslash
continues a line; a trailing comment '# hog: name=NAME gpus=2 timeout=30m' sets options.
yielder: a Python file whose yielder() generator yields command strings, or mappings
with 'cmd' and the same options.

Ctrl-C once: start nothing new, let running jobs finish. Twice: terminate them.
exit codes: 0 all succeeded, 1 some job failed, 2 bad usage or input, 130 Ctrl-C,
143 SIGTERM.

a sweep's state lives in <output_dir>/.hog/ (SQLite): running the same command again
resumes it (succeeded jobs are skipped), and these work from any shell:
  hog status [DIR] [--json]                   counts, running and failed jobs
  hog add [DIR] -- COMMAND...                 queue another job (or --job-file FILE)
  hog run [DIR] [options]                     run DIR's queue (no job source read)
  hog stop [DIR] [--now]                      drain (or terminate) the runners
  hog kill [DIR] JOB...                       cancel jobs (by number or name)
  hog retry [DIR] --failed | JOB...           queue finished jobs again
  hog gpus [DIR] SPEC                         change a live runner's slots
  hog gpus                                    the GPUs that discovery sees
  hog watch DIR [--exit 1|0] [OPTIONS]        run scripts dropped into DIR/to_run/
  hog attach [DIR]                            the live dashboard of a runner started elsewhere
  hog logs [DIR] JOB [--err] [-f]             a job's output (-f: follow it until it ends)
  hog report [DIR] [--output FILE]            DIR/report.html: timeline per GPU slot,
                                              utilisation, durations, failures' stderr
  hog rebuild [DIR]                           the queue rebuilt from the job folders, when
                                              .hog/hog.sqlite is lost or corrupt
  hog completion bash|zsh                     a shell completion script (see its --help)
DIR defaults to output. Before other words (JOB, SPEC) the first word is DIR when it
holds a sweep (DIR/.hog/), or for logs and gpus when two words are given.
"""



def run_parser() -> HogParser:
    """The parser of a sweep: ``hog --job-file F|--job-yielder F [options]``."""
    p = make_parser("hog", DESCRIPTION, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    _flag(src, "job_file", "-j", metavar="FILE",
          help="text file: one bash command per line (or a .yaml job file); "
               "'-': standard input")
    _flag(src, "job_yielder", "-y", metavar="FILE",
          help="Python file defining yielder(), a generator of jobs")
    _flag(p, "output_dir", "-o", metavar="DIR", default="output",
          help="where job folders go (default: output)")
    _flag(p, "prefix", default="job_", help="job folder name prefix (default: job_)")
    sweep_options(p)
    p.add_argument("-V", "--version", action="version", version=f"hog {__version__}",
                   help="print hog's version and exit")
    return p


def sweep_options(p: HogParser) -> None:
    """The options of a run other than its source and its output directory: ``hog
    --job-file`` and ``hog run DIR`` share them."""
    _flag(p, "gpus", "-g", metavar="SPEC",
          help="GPU slots: ids (0,1), repeats for several jobs per GPU (0,0,1), ranges (0-3),"
               " repeat counts (0-3x2), 'all', or 'none' (CPU-only: --cpu-slots slots, GPU "
               "jobs end unschedulable). Default: every GPU nvidia-smi finds (within "
               "CUDA_VISIBLE_DEVICES)")
    _flag(p, "grace", metavar="SECONDS", type=float, default=5.0,
          help="when terminating a job: seconds between SIGTERM and SIGKILL (default 5)")
    _flag(p, "resources", metavar="'NAME=N ...'",
          help="named resources this runner has, e.g. 'license=2 disk=1'; a job asking for "
               "more than is free waits (job option NAME=N)")
    _flag(p, "gpu_memory", metavar="SIZE",
          help="memory per GPU for jobs that declare memory=SIZE (default: what nvidia-smi "
               "reports): one size for all, e.g. 80G, or per id: 0=80G,1=40G")
    _flag(p, "cpu_slots", metavar="N", type=int,
          help="jobs with gpus=0 run in their own N slots, never taking a GPU slot "
               "(default: as many as GPU slots; with --gpus none, the number of cores)")
    _flag(p, "min_free_memory", metavar="SIZE",
          help="start jobs only on GPUs where others leave at least SIZE free "
               "(checked with nvidia-smi every 2 s)")
    _flag(p, "exclusive", action="store_true",
          help="start jobs only on GPUs where no process hog did not start is running")
    _flag(p, "wait_for_running", action="store_true",
          help="start nothing while another hog runner of yours on this machine runs jobs")
    _flag(p, "quarantine_after", metavar="N", type=int, default=3,
          help="stop placing jobs on a GPU once N jobs in a row failed fast there while "
               "other GPUs ran jobs, and run those jobs again elsewhere (default 3; 0: off)")
    _flag(p, "quarantine_within", metavar="SECONDS", type=float, default=60.0,
          help="a failure this soon after the start counts as fast (default 60; 0: off)")
    _flag(p, "no_oom_retry", action="store_true",
          help="do not run again, alone on a GPU, a job that ran out of GPU memory while "
               "sharing its GPU")
    _flag(p, "wait_for_same_gpus", action="store_true",
          help="like --wait-for-running, for runners sharing a GPU with this one only")
    _flag(p, "keep_alive", action="store_true",
          help="when the queue is empty, wait for jobs added with 'hog add' instead of exiting")
    _flag(p, "fresh", action="store_true",
          help="start over: move an existing output directory aside (to DIR.old-TIME) first")
    _flag(p, "detach", "-d", action="store_true",
          help="run in the background, immune to logout; output goes to DIR/.hog/runner.log")
    _flag(p, "resume_on_boot", action="store_true",
          help="start this sweep again by itself after a reboot (a systemd user unit, or "
               "an @reboot crontab line), until it ends; output goes to DIR/.hog/boot.log")
    _flag(p, "display", choices=("auto", "live", "plain", "quiet"), default="auto",
          help="auto: a live view on a terminal, one line per job start/end otherwise")
    p.add_argument("-q", "--quiet", action="store_const", const="quiet", dest="display",
                   help="print only the final summary")
    _flag(p, "on_job_end", metavar="CMD",
          help="run 'bash -c CMD' when a job ends, with HOG_JOB_NAME, HOG_JOB_STATUS, "
               "HOG_JOB_EXIT_CODE, HOG_JOB_DIR, HOG_JOB_ERR, ... in its environment")
    _flag(p, "on_finish", metavar="CMD",
          help="run 'bash -c CMD' when the sweep ends, with HOG_SWEEP_STATUS, HOG_EXIT_CODE, "
               "HOG_SUCCEEDED, HOG_FAILED, ... in its environment")
    _flag(p, "hook_timeout", metavar="SECONDS", type=float, default=30.0,
          help="a hook still running after this long is killed (default 30); hook output "
               "and failures go to DIR/.hog/hooks.log")
    _flag(p, "backend", choices=("local", "ray"), default="local",
          help="local (default): one process per slot on this machine; ray: each job is a "
               "Ray task on a Ray cluster (pip install 'gpu-hog[ray]'; see docs/ray.md)")
    _flag(p, "ray_address", metavar="ADDR",
          help="with --backend ray: the cluster to use, e.g. 10.0.0.1:6379 or auto "
               "(default: $RAY_ADDRESS, else a Ray instance started on this machine)")
    _flag(p, "timeout", metavar="DURATION",
          help="every job's timeout (90s, 30m, 4h) unless it sets its own")
    _flag(p, "retries", metavar="N", type=int,
          help="every job's retries unless it sets its own (above 0)")
    _flag(p, "max_failures", metavar="N", type=int,
          help="once N jobs failed, start no new job; running ones finish; exit 1")



def cmd_run(argv: List[str]) -> int:
    parser = run_parser()
    args = parser.parse_args(argv)
    argv = parser.canonical(argv)   # --detach starts hog again without '--detach' (or -d)
    if args.job_file is not None:
        source = file_source(args.job_file)
    else:
        source = file_source(args.job_yielder, yielder=True)
    if args.detach and source.kind == "stdin":
        raise UsageError("--job_file - (standard input) cannot be used with --detach: "
                         "the runner in the background has no standard input; write the "
                         "jobs to a file")
    return _start(args, argv, source, args.output_dir, args.prefix)


def run_dir_parser() -> HogParser:
    """``hog run [DIR] [options]``: the queue of DIR, no job source."""
    p = make_parser(
        "hog run", "Run the jobs queued in DIR (added with 'hog add', or left queued by "
        "a sweep) with no job source: a sweep's job file is not read again (so jobs that "
        "failed stay so: hog retry DIR --failed queues them). Takes the options of "
        "'hog --job-file' but the source and --output-dir.",
        usage="hog run [DIR] [options]")
    p.add_argument("dir", metavar="DIR", nargs="?", default=DEFAULT_DIR,
                   help=f"the sweep's output directory, which holds its queue "
                        f"(default: {DEFAULT_DIR})")
    sweep_options(p)
    return p


def cmd_run_dir(argv: List[str]) -> int:
    parser = run_dir_parser()
    args = parser.parse_args(argv)
    directory = check_default_dir("run", args.dir)
    if not os.path.isdir(directory):
        raise UsageError(f"{directory}: no such directory")
    if not is_sweep(directory):
        raise UsageError(f"{directory}: no queue to run (no {STATE_DIR}/ inside); queue jobs "
                         f"with hog add {directory} -- COMMAND, or run a job file: "
                         f"hog --job-file FILE -o {directory}")
    if args.fresh:
        raise UsageError("hog run: --fresh would move the queue aside, leaving nothing to "
                         "run")
    words = ["run"] + parser.canonical(argv)     # --detach: hog run again, in the background
    return _start(args, words, None, directory, _prefix(directory))


def _prefix(directory: str) -> str:
    """The job folders' prefix the queue in ``directory`` records (``job_`` if none)."""
    from hog.state.reading import open_sweep  # (hog run DIR only: not before a first job)
    reader = open_sweep(directory)
    try:
        return reader.meta("prefix") or "job_"
    finally:
        reader.close()


def _start(args: Any, argv: List[str], source: Optional[SourceSpec], output_dir: str,
           prefix: str) -> int:
    config = build_config(
        source, gpus=args.gpus, output_dir=output_dir, prefix=prefix,
        grace=args.grace, display=args.display, keep_alive=args.keep_alive, fresh=args.fresh,
        resources=args.resources, gpu_memory=args.gpu_memory, cpu_slots=args.cpu_slots,
        min_free_memory=args.min_free_memory, exclusive=args.exclusive,
        wait_for_running=args.wait_for_running, on_job_end=args.on_job_end,
        on_finish=args.on_finish, hook_timeout=args.hook_timeout, backend=args.backend,
        ray_address=args.ray_address, quarantine_after=args.quarantine_after,
        quarantine_within=args.quarantine_within, oom_retry=not args.no_oom_retry,
        timeout=args.timeout, retries=args.retries, max_failures=args.max_failures,
        wait_for_same_gpus=args.wait_for_same_gpus,
        resume_on_boot=_boot_args(argv) if args.resume_on_boot else ())
    if args.detach:
        from hog.engine.detach import detach  # the store and a re-started hog: only here
        return detach(argv, config)
    return _run(config)


# The sweep's options a watch does not take: its source is DIR, its output DIR/output.
NOT_WATCH = frozenset({"job_file", "job_yielder", "output_dir", "help", "version"})


def watch_parser() -> HogParser:
    """``hog watch DIR``: its DIR holds the scripts (it has no default). Every other
    option of a sweep run is taken as the sweep's parser declares it."""
    p = make_parser(
        "hog watch", "Run the scripts dropped into DIR/to_run/ in natural "
        "order (s2 before s10): each stays in DIR/to_run/ until it starts, is in "
        "DIR/running/ while it runs, then in DIR/complete/ or DIR/fail/ with its .stdout, "
        ".stderr and .exitcode beside it. Copy scripts in with mv, or let them settle: a "
        "file changed less than a second ago is not started. Every scheduling option of "
        "a sweep run applies; hog status DIR, hog stop DIR... work on DIR itself.")
    p.add_argument("dir", metavar="DIR", help="the folder that holds to_run/")
    p.add_argument("--exit", type=int, choices=(0, 1), default=1,
                   help="1 (default): exit once nothing new is in to_run/ and nothing "
                        "runs; 0: keep watching for new scripts")
    _flag(p, "output_dir", "-o", metavar="DIR", help="job folders (default: DIR/output)")
    for action in run_parser()._actions:
        if action.dest not in NOT_WATCH:
            p._add_action(action)
    return p


def cmd_watch(argv: List[str]) -> int:
    parser = watch_parser()
    args = parser.parse_args(argv)
    argv = ["watch"] + parser.canonical(argv)   # (--detach, --resume-on-boot: run again)
    if not os.path.isdir(args.dir):
        raise UsageError(f"{args.dir}: no such directory")
    if args.output_dir is not None and not args.output_dir.strip():
        raise UsageError("--output_dir: must not be empty")
    return _start(args, argv, SourceSpec("watch", args.dir, exit_when_empty=args.exit == 1),
                  args.output_dir or os.path.join(args.dir, "output"), args.prefix)


def _run(config: RunConfig) -> int:
    """Run the sweep. The engine (multiprocess, the backends, the store) and the display
    load only here, so that --help, --version and the verbs start quickly; multiprocess
    without dill, which no process of hog's needs (hog.engine.context), unless the
    sweep's source is Python code of the user's, which runs in hog's producer."""
    from hog.engine.context import runs_user_python, standard_pickling
    if not runs_user_python(config.source):
        standard_pickling()
    from hog.engine.runner import run
    from hog.views.display import make_display
    return run(config, make_display)


def _boot_args(argv: List[str]) -> List[str]:
    from hog.boot import boot_args  # only with --resume-on-boot (hog.boot: 5 ms to load)
    return boot_args(argv)
