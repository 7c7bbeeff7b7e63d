"""The store's rows as Python sees them: ``JobRow`` and ``RunnerRow`` (one per row of
the ``jobs`` and ``runners`` tables, fields in column order), ``ResultRow`` (what a
results file shows of a job), and the JSON of a job's ``spec`` column.

Frozen and free of SQL: every role of the store (``jobs``, ``runners``,
``reading``) hands these out, and views may keep them as long as they like. They are
``NamedTuple``s, not dataclasses, because they are made in bulk from ``sqlite3``'s row
tuples: 0.2 us a row instead of 2.9 for a frozen dataclass of ``JobRow``'s 33 fields
(the runner reads the queue's head; ``hog status --json`` a thousand rows), and the
classes are made in a sixth of the time at import.
"""
import json
from typing import NamedTuple, Optional

from hog.model import Job

# A job is still in the sweep's source unless the last reading of the source that was
# read to its end did not list it. Jobs added with hog add always are, and so are those
# retried by name after they left it (``seen`` NULL) until a reading lists them again.
IN_SOURCE_SQL = ("(ident IS NULL OR seen IS NULL OR seen >= coalesce("
                 "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'read'), 0))")
# A queued job may start: added (or retried so), or listed by the reading of the source
# now under way (a job queued when the source was edited runs only if it is still there).
RUNNABLE_SQL = ("status = 'queued' AND (ident IS NULL OR seen IS NULL OR seen = coalesce("
                "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'reading'), 0))")

PARAM_KEYS = "param_keys"   # meta: the grid parameters any job carries (JSON list, sorted)
REBUILT = "rebuilt"         # meta: when ``hog rebuild`` made this queue

# The columns of ``jobs`` in the order of JobRow's fields.
JOB_COLUMNS = ("id, source_pos, name, command, spec, origin, priority, status, attempt, runner, "
               "slot, gpus, pid, exit_code, signal, started, ended, added, cancel, note, "
               "ident, digest, seen, pgid, sid, proc_start, cpu_user_s, cpu_system_s, "
               f"max_rss_bytes, gpu_mem_peak_bytes, gpu_util_mean, {IN_SOURCE_SQL} AS in_source")

_DEFAULTS = Job(index=0, command="")
_SPEC_KEYS = ("gpus", "resources", "env", "cwd", "timeout", "retries", "priority", "gpu_ids",
              "after", "params")
_PAIRS = ("resources", "env", "params")
_SPEC_DEFAULTS = tuple((key, getattr(_DEFAULTS, key)) for key in _SPEC_KEYS)


class JobRow(NamedTuple):
    """A row of ``jobs``, its columns in order (``JOB_COLUMNS``)."""
    id: int
    source_pos: Optional[int]
    name: Optional[str]
    command: str
    spec: str
    origin: str
    priority: int
    status: str
    attempt: int
    runner: Optional[int]
    slot: Optional[int]
    gpus: Optional[str]
    pid: Optional[int]
    exit_code: Optional[int]
    signal: Optional[str]
    started: Optional[float]
    ended: Optional[float]
    added: float
    cancel: int
    note: str
    ident: Optional[str] = None  # identity key (state/identity.py); None: added by hog add
    digest: str = ""             # hash of the job's definition
    seen: Optional[int] = None   # the last reading of the source that listed it
    pgid: Optional[int] = None          # the process group, session and kernel start
    sid: Optional[int] = None           # time of the running job's leader ``pid``
    proc_start: Optional[str] = None
    cpu_user_s: Optional[float] = None          # what the latest attempt used
    cpu_system_s: Optional[float] = None        # (``model.Usage``; NULL: not known)
    max_rss_bytes: Optional[int] = None
    gpu_mem_peak_bytes: Optional[int] = None
    gpu_util_mean: Optional[float] = None
    in_source: int = 1           # 0: the source no longer lists it (kept, not run)

    def job(self) -> Job:
        spec = json.loads(self.spec)
        for key in ("resources", "env", "gpu_ids", "after", "params"):
            if key in spec:
                spec[key] = tuple(tuple(x) if key in _PAIRS else x for x in spec[key])
        return Job(index=self.id, command=self.command, where=self.origin, name=self.name,
                   **spec)


class ResultRow(NamedTuple):
    """A job's columns for results files (``SweepReader.result_rows``)."""
    id: int
    name: Optional[str]
    command: str
    status: str
    exit_code: Optional[int]
    signal: Optional[str]
    attempt: int
    gpus: Optional[str]
    slot: Optional[int]
    runner: Optional[int]
    host: Optional[str]
    started: Optional[float]
    ended: Optional[float]
    note: str
    in_source: int
    cpu_user_s: Optional[float] = None
    cpu_system_s: Optional[float] = None
    max_rss_bytes: Optional[int] = None
    gpu_mem_peak_bytes: Optional[int] = None
    gpu_util_mean: Optional[float] = None
    spec: Optional[str] = None  # the job's spec JSON if it holds grid params, else None


class RunnerRow(NamedTuple):
    """A row of ``runners``, its columns in order."""
    id: int
    pid: int
    host: str
    proc_start: str
    gpus: str
    started: float
    heartbeat: float
    ended: Optional[float]
    request: Optional[str]
    gpus_request: Optional[str]
    keep_alive: int = 0             # 1: --keep-alive (it waits for work)
    capacity: str = ""              # JSON: cpu_slots, resources ('' when unknown)


def job_spec(job: Job) -> str:
    """The job's options that differ from the defaults, as JSON."""
    spec = {}
    fields = vars(job)      # (a frozen dataclass's fields: read as a dict, once a job)
    for key, default in _SPEC_DEFAULTS:
        value = fields[key]
        if value != default:
            spec[key] = [list(x) for x in value] if key in _PAIRS else value
    return json.dumps(spec, sort_keys=True) if spec else "{}"
