"""Command line: ``hog --job_file F --gpus SPEC`` runs a sweep; verbs come first.

Exit codes: 0 all jobs succeeded; 1 a job failed (or could not be scheduled); 2 usage
or input error, nothing started; 130 stopped by Ctrl-C; 143 stopped by SIGTERM.
"""
import argparse
import os
import sys
from typing import List, Optional

from hog import __version__
from hog.errors import HogError, UsageError

DESCRIPTION = """\
Run every job of a job file (one bash command per line) or of a Python yielder,
one job per GPU slot at a time, each pinned with CUDA_VISIBLE_DEVICES, each with
its own folder: <output_dir>/job_N/ holding INFO, job_N.OUT, job_N.ERR and, once
it ended, SUCCESS or FAILURE.
"""

EPILOG = """\
examples:
  hog --job_file jobs.txt --gpus 0,1          one job at a time on GPU 0 and on GPU 1
  hog --job_file jobs.txt --gpus 0,0,1        two jobs at once on GPU 0, one on GPU 1
  hog --job_file jobs.txt --gpus 0-3x2        two slots on each of GPUs 0 to 3
  hog --job_yielder sweep.py --gpus all       jobs from sweep.py's yielder(), every GPU

job files: blank lines and lines starting with # are skipped; a trailing backslash
continues a line; a trailing comment '# hog: name=NAME gpus=2 timeout=30m' sets options.
yielder: a Python file whose yielder() generator yields command strings, or mappings
with 'cmd' and the same options.

Ctrl-C once: start nothing new, let running jobs finish. Twice: terminate them.
exit codes: 0 all succeeded, 1 some job failed, 2 bad usage or input, 130 Ctrl-C,
143 SIGTERM.

a sweep's state lives in <output_dir>/.hog/ (SQLite): running the same command again
resumes it (succeeded jobs are skipped), and these work from any shell:
  hog status DIR [--json]                     counts, running and failed jobs
  hog add DIR -- COMMAND...                   queue another job (or --job_file FILE)
  hog stop DIR [--now]                        drain (or terminate) the runners
  hog kill DIR JOB...                         cancel jobs (by number or name)
  hog retry DIR --failed | JOB...             queue finished jobs again
  hog gpus DIR SPEC                           change a live runner's slots
  hog gpus                                    the GPUs that discovery sees
  hog watch DIR [--gpus SPEC] [--exit 1|0]    run scripts dropped into DIR/to_run/
  hog attach DIR                              the live dashboard of a runner started elsewhere
  hog logs DIR JOB [--err] [-f]               a job's output (-f: follow it until it ends)
  hog report DIR [--output FILE]              DIR/report.html: timeline per GPU slot,
                                              utilisation, durations, failures' stderr
"""


def _flag(parser, name: str, **kw) -> None:
    """An option accepted as --some_name and --some-name."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*names, dest=name, **kw)


def dir_parser(verb: str, description: str) -> argparse.ArgumentParser:
    """The parser of a verb that acts on a sweep: ``hog VERB DIR ...``."""
    p = argparse.ArgumentParser(prog=f"hog {verb}", description=description)
    p.add_argument("dir", metavar="DIR", help="the sweep's output directory")
    return p


def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hog", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    _flag(src, "job_file", metavar="FILE", help="text file: one bash command per line")
    _flag(src, "job_yielder", metavar="FILE",
          help="Python file defining yielder(), a generator of jobs")
    _flag(p, "gpus", metavar="SPEC",
          help="GPU slots: ids (0,1), repeats for several jobs per GPU (0,0,1), ranges (0-3),"
               " repeat counts (0-3x2), or 'all'. Default: every GPU nvidia-smi finds "
               "(within CUDA_VISIBLE_DEVICES)")
    _flag(p, "output_dir", metavar="DIR", default="output",
          help="where job folders go (default: output)")
    _flag(p, "prefix", default="job_", help="job folder name prefix (default: job_)")
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
               "(default: as many as GPU slots)")
    _flag(p, "min_free_memory", metavar="SIZE",
          help="start jobs only on GPUs where others leave at least SIZE free "
               "(checked with nvidia-smi every 2 s)")
    _flag(p, "exclusive", action="store_true",
          help="start jobs only on GPUs where no process hog did not start is running")
    _flag(p, "wait_for_running", action="store_true",
          help="start nothing while another hog runner of yours on this machine runs jobs")
    _flag(p, "keep_alive", action="store_true",
          help="when the queue is empty, wait for jobs added with 'hog add' instead of exiting")
    _flag(p, "fresh", action="store_true",
          help="start over: move an existing output directory aside (to DIR.old-TIME) first")
    _flag(p, "detach", action="store_true",
          help="run in the background, immune to logout; output goes to DIR/.hog/runner.log")
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
               "Ray task on a Ray cluster (pip install 'hog[ray]'; see docs/ray.md)")
    _flag(p, "ray_address", metavar="ADDR",
          help="with --backend ray: the cluster to use, e.g. 10.0.0.1:6379 or auto "
               "(default: $RAY_ADDRESS, else a Ray instance started on this machine)")
    p.add_argument("--version", action="version", version=f"hog {__version__}")
    return p


def gpus_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hog gpus", description="Show the GPUs discovery sees.")
    return p


def cmd_gpus(argv: List[str]) -> int:
    if argv and not argv[0].startswith("-"):
        from hog.cli.verbs import cmd_set_gpus
        return cmd_set_gpus(argv)
    gpus_parser().parse_args(argv)
    from hog.gpus.discovery import query_gpus, visible_ids
    gpus = query_gpus()
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus is None:
        print("nvidia-smi: not available")
    else:
        for g in gpus:
            mem = "" if g.memory_total_mib is None else \
                f"  {g.memory_used_mib} / {g.memory_total_mib} MiB used"
            print(f"GPU {g.index}  {g.name}  {g.uuid}{mem}")
    ids = visible_ids(gpus, cvd)
    print(f"CUDA_VISIBLE_DEVICES: {cvd if cvd is not None else '(not set)'}")
    print(f"--gpus all would use: {','.join(ids) if ids else 'nothing'}")
    return 0


def _verb(name: str, module: str = "cli.verbs"):
    def call(argv: List[str]) -> int:
        import importlib
        return getattr(importlib.import_module(f"hog.{module}"), f"cmd_{name}")(argv)
    return call


def cmd_watch(argv: List[str]) -> int:
    p = dir_parser(
        "watch", "Run the scripts dropped into DIR/to_run/ in natural "
        "order (s2 before s10): each moves to DIR/running/, then to DIR/complete/ or "
        "DIR/fail/ with its .stdout, .stderr and .exitcode beside it. Copy scripts in with "
        "mv, or let them settle: a file changed less than a second ago is not started.")
    _flag(p, "gpus", metavar="SPEC", help="GPU slots, as for a sweep (default: all)")
    p.add_argument("--exit", type=int, choices=(0, 1), default=1,
                   help="1 (default): exit once to_run/ is empty and nothing runs; "
                        "0: keep watching for new scripts")
    _flag(p, "output_dir", metavar="DIR", help="job folders (default: DIR/output)")
    _flag(p, "grace", metavar="SECONDS", type=float, default=5.0)
    _flag(p, "display", choices=("auto", "live", "plain", "quiet"), default="auto")
    p.add_argument("-q", "--quiet", action="store_const", const="quiet", dest="display")
    args = p.parse_args(argv)
    from hog.sources.producer import SourceSpec
    from hog.config import RunConfig, slots_for
    from hog.engine.runner import run
    from hog.views.display import make_display
    if not os.path.isdir(args.dir):
        raise UsageError(f"{args.dir}: no such directory")
    slots = slots_for(args.gpus)
    config = RunConfig(source=SourceSpec("watch", args.dir, exit_when_empty=args.exit == 1),
                       slots=tuple(slots),
                       output_dir=args.output_dir or os.path.join(args.dir, "output"),
                       grace=args.grace, display=args.display)
    return run(config, make_display)


def cmd_report(argv: List[str]) -> int:
    from hog.views.report import cmd_report as report
    return report(argv)


VERBS = {"gpus": cmd_gpus, "watch": cmd_watch, "status": _verb("status"), "add": _verb("add"),
         "stop": _verb("stop"), "kill": _verb("kill"), "retry": _verb("retry"),
         "attach": _verb("attach", "views.attach"), "logs": _verb("logs", "views.logs"),
         "report": cmd_report}


def parse_resources(text: Optional[str]) -> tuple:
    """``'foo=12 bar=1'`` (spaces or commas) -> (("bar", 1.0), ("foo", 12.0))."""
    from hog.sources.joboptions import parse_amount
    out = {}
    for item in (text or "").replace(",", " ").split():
        name, eq, amount = item.partition("=")
        try:
            if not eq or not name:
                raise ValueError(item)
            out[name] = parse_amount(amount)
        except ValueError:
            raise UsageError(f"--resources: bad item {item!r} (expected NAME=NUMBER, e.g. "
                             f"'license=2 disk=1')") from None
    return tuple(sorted(out.items()))


def parse_gpu_memory(text: Optional[str]) -> tuple:
    """``80G`` -> (("*", bytes),); ``0=80G,1=40G`` -> per id."""
    from hog.sources.joboptions import parse_amount
    if not text:
        return ()
    out = []
    for item in text.split(","):
        gpu, eq, size = item.strip().rpartition("=")
        try:
            out.append((gpu if eq else "*", parse_amount(size)))
        except ValueError:
            raise UsageError(f"--gpu_memory: bad item {item!r} (expected a size such as 80G, "
                             f"or ID=SIZE)") from None
    return tuple(out)


def cmd_run(argv: List[str]) -> int:
    args = run_parser().parse_args(argv)
    from hog.sources.producer import SourceSpec
    from hog.engine.runner import run
    from hog.views.display import make_display
    from hog.sources.text import check_readable
    if args.job_file is not None:
        check_readable(args.job_file, "job file")
        yaml_file = args.job_file.lower().endswith((".yaml", ".yml"))
        source = SourceSpec("yaml" if yaml_file else "text", args.job_file)
    else:
        check_readable(args.job_yielder, "yielder file")
        source = SourceSpec("yielder", args.job_yielder)
    config = run_config(args, source)
    if args.detach:
        from hog.engine.detach import detach
        return detach(argv, args.output_dir)
    return run(config, make_display)


def run_config(args: argparse.Namespace, source):
    """The run's configuration from the sweep options (checked: UsageError if bad).
    ``hog.run`` in Python goes through here too, so both take the same options."""
    from hog.config import RunConfig, slots_for
    if not args.prefix or "/" in args.prefix or args.prefix.startswith("."):
        raise UsageError(f"--prefix {args.prefix!r}: must be non-empty, without '/', "
                         f"and not start with '.'")
    if args.grace < 0:
        raise UsageError("--grace must be 0 or more seconds")
    if args.hook_timeout <= 0:
        raise UsageError("--hook_timeout must be more than 0 seconds")
    ray_gpus = None
    if args.backend == "ray":
        ray_gpus = ray_options(args)
        slots = []
    elif args.ray_address is not None:
        raise UsageError("--ray_address is for --backend ray")
    else:
        slots = slots_for(args.gpus)
    if args.cpu_slots is not None and args.cpu_slots < 0:
        raise UsageError("--cpu_slots must be 0 or more")
    from hog.sources.joboptions import parse_amount
    min_free = None
    if args.min_free_memory is not None:
        try:
            min_free = parse_amount(args.min_free_memory)
        except ValueError:
            raise UsageError(f"--min_free_memory {args.min_free_memory!r}: expected a size "
                             f"such as 10G") from None
    return RunConfig(source=source, slots=tuple(slots), output_dir=args.output_dir,
                     prefix=args.prefix, grace=args.grace, display=args.display,
                     keep_alive=args.keep_alive, fresh=args.fresh,
                     resources=parse_resources(args.resources),
                     gpu_memory=parse_gpu_memory(args.gpu_memory),
                     cpu_slots=args.cpu_slots, min_free_memory=min_free,
                     exclusive=args.exclusive, wait_for_running=args.wait_for_running,
                     on_job_end=args.on_job_end, on_finish=args.on_finish,
                     hook_timeout=args.hook_timeout, backend=args.backend,
                     ray_address=args.ray_address, ray_gpus=ray_gpus)


RAY_IGNORES = (("resources", "declare resources on the nodes: ray start --resources"),
               ("gpu_memory", "ask for fractions of a GPU instead (gpus=0.5)"),
               ("cpu_slots", "CPU-only jobs take one CPU of the cluster each (or CPU=n)"),
               ("min_free_memory", "it watches this machine's GPUs only"),
               ("exclusive", "it watches this machine's GPUs only"),
               ("wait_for_running", "it watches this machine's runners only"))


def ray_options(args) -> Optional[tuple]:
    """Check the options of a ``--backend ray`` run; returns the GPU ids of a local Ray
    instance (None: Ray finds them)."""
    import importlib.util
    for name, why in RAY_IGNORES:
        if getattr(args, name) not in (None, False):
            raise UsageError(f"--{name} does not apply with --backend ray: {why}")
    if importlib.util.find_spec("ray") is None:
        raise UsageError("--backend ray needs Ray on this machine: pip install 'hog[ray]'")
    if args.gpus in (None, "all"):
        return None
    if args.ray_address or os.environ.get("RAY_ADDRESS"):
        raise UsageError("--gpus does not apply to an existing Ray cluster: each node has "
                         "the GPUs it was started with (ray start --num-gpus N)")
    from hog.gpus.discovery import discover
    from hog.gpus.spec import parse_gpus
    ids = parse_gpus(args.gpus, discover)
    if len(set(ids)) != len(ids):
        raise UsageError(f"--gpus {args.gpus}: with --backend ray a GPU is listed once; "
                         f"jobs share a GPU by asking for a fraction of it (gpus=0.5)")
    return tuple(ids)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in VERBS:
            return VERBS[argv[0]](argv[1:])
        return cmd_run(argv)
    except HogError as e:
        print(f"hog: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("hog: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:             # hog status DIR | head
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
