"""Running and reading sweeps from Python (a script or a notebook).

    import hog

    result = hog.run(["python train.py --lr 0.1",
                      {"cmd": "python train.py --lr 0.01", "name": "small", "gpus": 1}],
                     gpus="0,1", output_dir="out")
    result.exit_code                  # 0, 1, ... as on the command line
    [r.name for r in result.failed]   # JobRecord: frozen dataclasses
    pandas.DataFrame(hog.results("out").to_records())

    @hog.sweep(gpus="0-3", output_dir="lr-sweep")
    def lr_sweep(seeds=3):
        for lr in (0.1, 0.01):
            for seed in range(seeds):
                yield f"python train.py --lr {lr} --seed {seed}"

    result = lr_sweep(seeds=2)        # runs the sweep

``hog.run`` takes the options of the command line as keyword arguments
(``gpus``, ``output_dir``, ``prefix``, ``grace``, ``display``, ``keep_alive``,
``fresh``, ``resources``, ``gpu_memory``, ``cpu_slots``, ``min_free_memory``,
``exclusive``, ``wait_for_running``, ``wait_for_same_gpus``, ``on_job_end``,
``on_finish``, ``hook_timeout``, ``timeout``, ``retries``, ``max_failures``,
``quarantine_after``, ``quarantine_within``, ``oom_retry``; ``gpus="none"`` for CPU
slots only), checks them the same way, and runs the same runner: the jobs
go through the producer process, the store and the slot processes exactly as a
job file's do. A generator is read lazily in the producer process, like a
``--job_yielder`` file. Running the same sweep again on the same output
directory resumes it.
"""
import functools
import os
import signal
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from hog.config import OPTIONS, build_config, file_source
from hog.engine.runner import run as run_sweep
from hog.errors import UsageError
from hog.model import Status
from hog.sources import SourceSpec
from hog.sources.yielder import job_from_item
from hog.state.files import open_read
from hog.state.jobdir import STATE_DIR, Layout
from hog.state.results import PARAM, params_of
from hog.state.store import JobRow, Store
from hog.views.display import make_display

__all__ = ["run", "sweep", "results", "JobRecord", "Results", "SweepResult"]


@dataclass(frozen=True)
class JobRecord:
    """One job of a sweep, as its store records it (for the last attempt)."""

    index: int                       # N of the job folder <prefix>N
    name: str
    command: str
    status: str                      # queued, running, succeeded, failed, timeout, ...
    exit_code: Optional[int]
    signal: Optional[str]
    attempt: int
    slot: Optional[int]
    gpus: Tuple[str, ...]
    started: Optional[datetime]      # local time, with its UTC offset
    ended: Optional[datetime]
    duration_s: Optional[float]
    folder: str
    out_path: str
    err_path: str
    origin: str                      # where the job came from (file:line)
    note: str
    in_source: bool = True           # False: the sweep's source no longer lists it (kept)
    params: Dict[str, Any] = field(default_factory=dict)   # a YAML grid point: {"lr": 0.1}

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def out(self) -> str:
        """The job's standard output ('' if it has none yet)."""
        return _read(self.out_path)

    def err(self) -> str:
        """The job's standard error ('' if it has none yet)."""
        return _read(self.err_path)


@dataclass(frozen=True)
class Results:
    """The jobs of a sweep, in job-number order; iterable and indexable."""

    output_dir: str
    jobs: Tuple[JobRecord, ...]

    def __iter__(self):
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i):
        return self.jobs[i]

    @property
    def succeeded(self) -> Tuple[JobRecord, ...]:
        return tuple(j for j in self.jobs if j.status == "succeeded")

    @property
    def failed(self) -> Tuple[JobRecord, ...]:
        """Jobs that ended without success (failed, timeout, interrupted, skipped,
        unschedulable); cancelled ones are not failures."""
        return tuple(j for j in self.jobs
                     if Status(j.status).counts_as_failure)

    def job(self, ref: Union[int, str]) -> JobRecord:
        """A job by number or by name (KeyError if there is none)."""
        for j in self.jobs:
            if (j.index == ref) if isinstance(ref, int) else (j.name == ref):
                return j
        raise KeyError(ref)

    def to_records(self) -> List[Dict[str, Any]]:
        """One plain dict per job, e.g. for ``pandas.DataFrame(results.to_records())``;
        the grid parameters are flat keys ``param.<key>`` (sorted; None where a job has
        no such parameter), as in ``results.jsonl``."""
        keys = sorted({k for j in self.jobs for k in j.params})
        out = []
        for j in self.jobs:
            rec = asdict(j)
            del rec["params"]
            for k in keys:
                rec[PARAM + k] = j.params.get(k)
            out.append(rec)
        return out


@dataclass(frozen=True)
class SweepResult(Results):
    """What ``hog.run`` returns: the sweep's jobs and hog's exit code."""

    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


# ------------------------------------------------------------------- reading
def results(output_dir: Union[str, os.PathLike] = "output") -> Results:
    """The jobs of the sweep in ``output_dir`` (finished or not), from its store."""
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(output_dir):
        raise UsageError(f"{output_dir}: no such directory")
    store = Store(os.path.join(output_dir, STATE_DIR), create=False)
    try:
        layout = Layout(os.path.abspath(output_dir), store.meta("prefix") or "job_")
        jobs = tuple(_record(row, layout) for row in store.all_rows())
    finally:
        store.close()
    return Results(output_dir, jobs)


def _record(row: JobRow, layout: Layout) -> JobRecord:
    def when(ts):
        return None if ts is None else datetime.fromtimestamp(ts).astimezone()
    finished = Status(row.status).finished
    duration = None if not finished or row.started is None or row.ended is None \
        else round(row.ended - row.started, 3)
    return JobRecord(
        index=row.id, name=row.name or layout.folder_name(row.id), command=row.command,
        status=row.status, exit_code=row.exit_code, signal=row.signal, attempt=row.attempt,
        slot=row.slot, gpus=tuple(g for g in (row.gpus or "").split(",") if g),
        started=when(row.started), ended=when(row.ended) if finished else None,
        duration_s=duration, folder=layout.folder(row.id), out_path=layout.out_path(row.id),
        err_path=layout.err_path(row.id), origin=row.origin, note=row.note,
        in_source=bool(row.in_source),
        params=params_of(row.spec) if '"params"' in row.spec else {})


def _read(path: str) -> str:
    try:
        with open(open_read(path), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# ------------------------------------------------------------------- running
def _options(options: Dict[str, Any]) -> Dict[str, Any]:
    """``hog.run``'s keyword options, checked by name (``TypeError`` for an unknown one);
    ``quiet=True`` stands for ``display="quiet"``."""
    options = dict(options)
    if options.pop("quiet", False):
        options.setdefault("display", "quiet")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"hog.run: unknown option(s) {', '.join(unknown)}; the options are: "
                        f"{', '.join(sorted(OPTIONS))}")
    return options


def _source(jobs: Any, job_file: Union[str, os.PathLike, None],
            job_yielder: Union[str, os.PathLike, None], name: Optional[str]) -> SourceSpec:
    given = [x is not None for x in (jobs, job_file, job_yielder)]
    if sum(given) != 1:
        raise UsageError("hog.run: give jobs, job_file= or job_yielder= (exactly one)")
    if job_file is not None:
        return file_source(job_file)
    if job_yielder is not None:
        return file_source(job_yielder, yielder=True)
    if isinstance(jobs, (str, Mapping)):
        jobs = [jobs]
    label = name or "hog.run"
    if isinstance(jobs, (list, tuple)):
        for i, item in enumerate(jobs):        # bad input fails here, before anything runs
            job_from_item(item, i, f"{label} (job {i})")
    elif not isinstance(jobs, Iterable):
        raise UsageError(f"hog.run: jobs must be an iterable of command strings or mappings, "
                         f"not {type(jobs).__name__}")
    return SourceSpec("python", label, items=jobs)


def run(jobs: Any = None, *, job_file: Union[str, os.PathLike, None] = None,
        job_yielder: Union[str, os.PathLike, None] = None, name: Optional[str] = None,
        **options: Any) -> SweepResult:
    """Run a sweep and wait for it; returns its jobs and the exit code.

    ``jobs``: command strings and/or mappings with ``cmd`` and the job options
    (``name``, ``gpus``, ``timeout``, ``retries``, ``after``, ``env``, ...), as a
    list or a generator; or ``job_file=`` / ``job_yielder=`` a file, as on the
    command line. ``name`` labels an in-memory sweep in its output directory
    (running one with the same name there again resumes it). Options are the
    command line's, e.g. ``gpus="0,0,1"`` (or ``[0, 0, 1]``), ``output_dir``,
    ``display="quiet"`` (or ``quiet=True``), ``on_finish="..."``.

    Bad input or options raise ``hog.HogError`` (nothing runs). Call it from the
    main thread: like the command line, it handles Ctrl-C (once: start nothing
    new; twice: terminate the running jobs); Python's own handling is restored
    afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        raise UsageError("hog.run: call it from the main thread (it handles Ctrl-C)")
    checked = _options(options)
    config = build_config(_source(jobs, job_file, job_yielder, name), **checked)
    code = _with_own_signals(run_sweep, config, make_display)
    found = results(config.output_dir) if os.path.isdir(config.output_dir) else \
        Results(config.output_dir, ())
    return SweepResult(found.output_dir, found.jobs, code)


def _with_own_signals(fn: Callable[..., int], *args: Any) -> int:
    """Call ``fn``, then put back the signal handlers and wake-up fd it replaced."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {s: signal.getsignal(s) for s in sigs}
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    try:
        return fn(*args)
    finally:
        for s, handler in saved.items():
            if handler is not None:
                signal.signal(s, handler)
        signal.set_wakeup_fd(wakeup)


def sweep(fn: Optional[Callable] = None, **options: Any):
    """A decorator: calling the decorated function runs the jobs it returns or
    yields as a sweep, with these options, and returns the ``SweepResult``.

        @hog.sweep(gpus="0,1", output_dir="out")
        def grid():
            for lr in (0.1, 0.01):
                yield {"cmd": f"python train.py --lr {lr}", "name": f"lr{lr}"}

        result = grid()
        grid.jobs()          # the jobs themselves, without running anything

    The sweep is labelled with the function's name (``name=`` to choose), so
    calling it again on the same output directory resumes it.
    """
    def decorate(f: Callable):
        opts = dict(options)
        label = opts.pop("name", None) or f"{f.__module__}.{f.__qualname__}"
        _options(opts)                      # unknown options fail at decoration time

        @functools.wraps(f)
        def run_it(*args, **kwargs) -> SweepResult:
            return run(f(*args, **kwargs), name=label, **opts)

        run_it.jobs = f                     # type: ignore[attr-defined]
        run_it.options = opts               # type: ignore[attr-defined]
        return run_it

    if fn is not None:
        return decorate(fn)
    return decorate

