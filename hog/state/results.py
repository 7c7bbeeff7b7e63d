"""What happened in a sweep, as data: one record per job for scripts and notebooks
(``results.jsonl`` and ``results.csv`` beside the job folders), and every attempt of
every job for the report's timeline.

A record is flat (no nested values) and always has the same keys in the same order,
so ``pandas.read_json(path, lines=True)`` and ``pandas.read_csv(path)`` give a clean
frame: times are UTC ISO 8601 in ``started_at`` / ``ended_at`` (pandas parses those
names as datetimes) and seconds since the epoch in ``started_epoch`` / ``ended_epoch``.
After ``FIELDS`` come the grid parameters the sweep's jobs carry, ``param.<key>``
sorted by key (empty for a job without that parameter).

``hog.state.resultfiles`` writes the files, each write re-encoding only what changed.
"""
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from hog.model import USAGE_FIELDS, Status, slot_label
from hog.state.files import from_iso
from hog.state.jobdir import Layout
from hog.state.jobread import earlier_attempts, read_info
from hog.state.reading import SweepReader
from hog.state.rows import JobRow, ResultRow, RunnerRow

FIELDS = ("index", "name", "folder", "command", "status", "exit_code", "signal", "attempts",
          "gpus", "slot", "runner", "host", "started_at", "ended_at", "started_epoch",
          "ended_epoch", "duration_s", "note", "in_source") + USAGE_FIELDS
# (USAGE_FIELDS: what the latest attempt used, ``model.Usage``; empty where not known)
PARAM = "param."                # a grid parameter's column: param.lr
CHECK_EVERY = 1000              # jobs between two checkpoints of the results mark
_MARK_VERSION = 1
_SETTLED = frozenset(s.value for s in Status.having("finished"))


_SECONDS: Dict[int, str] = {}

RAN = tuple(s.value for s in Status.having("started_command"))   # had started its command


def utc_iso(ts: Optional[float]) -> Optional[str]:
    """``2024-05-01T09:30:12.345+00:00`` (UTC, to the millisecond, truncated)."""
    if ts is None:
        return None
    frac, whole = math.modf(ts)         # rounded to microseconds as datetime does it
    second, micro = int(whole), round(frac * 1e6)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    text = _SECONDS.get(second)
    if text is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        text = _SECONDS[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{text}.{micro // 1000:03d}+00:00"


def params_of(spec: Optional[str]) -> Dict[str, Any]:
    """The grid parameters in a job's ``spec`` JSON: {key: value}, in grid order."""
    if not spec:
        return {}
    try:
        pairs = json.loads(spec).get("params") or ()
        return {str(k): v for k, v in pairs}
    except (ValueError, TypeError, AttributeError):     # not what hog writes: no params
        return {}


def columns(store: SweepReader) -> Tuple[str, ...]:
    """The keys of every record of the sweep: ``FIELDS``, then its ``param.*``."""
    return FIELDS + tuple(PARAM + k for k in store.param_keys())


def record(row: ResultRow, layout: Layout, params: Sequence[str] = ()) -> dict:
    """The flat record of one job (its latest attempt); ``params``: the sweep's grid
    parameters (the ``param.*`` columns), each None where this job has no value."""
    (index, name, command, status, exit_code, signal, attempt, gpus, slot, runner, host,
     started, ended, note, in_source) = row[:15]
    spec = row.spec
    if status == "running":
        ended = None
    folder = layout.folder_name(index)
    rec = {
        "index": index,
        "name": name or folder,
        "folder": folder,
        "command": command,
        "status": status,
        "exit_code": exit_code,
        "signal": signal,
        "attempts": attempt,
        "gpus": gpus or "",
        "slot": "" if slot is None else slot_label(slot),
        "runner": runner,
        "host": host,
        "started_at": None if started is None else utc_iso(started),
        "ended_at": None if ended is None else utc_iso(ended),
        "started_epoch": None if started is None else round(started, 3),
        "ended_epoch": None if ended is None else round(ended, 3),
        "duration_s": None if started is None or ended is None
        else round(max(0.0, ended - started), 3),
        "note": note,
        "in_source": bool(in_source),
        "cpu_user_s": row.cpu_user_s,
        "cpu_system_s": row.cpu_system_s,
        "max_rss_bytes": row.max_rss_bytes,
        "gpu_mem_peak_bytes": row.gpu_mem_peak_bytes,
        "gpu_util_mean": row.gpu_util_mean,
    }
    if params:
        values = params_of(spec)
        for key in params:
            rec[PARAM + key] = values.get(key)
    return rec


def records(store: SweepReader, layout: Layout) -> Iterator[dict]:
    """Every job's record, by index: what ``results.jsonl`` holds."""
    params = store.param_keys()
    for row in store.result_rows():
        yield record(row, layout, params)


# ------------------------------------------------------------------ attempts
@dataclass(frozen=True)
class Attempt:
    """One run of a job on a slot, for the timeline."""

    job: int                    # the job's index (folder number)
    attempt: int
    status: str                 # as the attempt ended; 'running' while it runs
    exit_code: Optional[int]
    signal: Optional[str]
    runner: Optional[int]
    host: Optional[str]
    slot: int                   # GPU slots 0, 1, ...; CPU slots -1, -2, ...
    gpus: Tuple[str, ...]
    started: float
    ended: Optional[float]      # None while it runs
    latest: bool                # False for an earlier attempt of a job run again




def attempts(rows: Iterable[JobRow], runners: List[RunnerRow], layout: Layout) -> List[Attempt]:
    """Every attempt that ran: the latest from the store, earlier ones from the INFO
    files kept in job folders (read only for jobs that ran more than once)."""
    hosts = {r.id: r.host for r in runners}
    out: List[Attempt] = []
    for row in rows:
        latest = _latest(row, hosts, layout)
        if latest is not None:
            out.append(latest)
        if row.attempt >= 2:
            for info in earlier_attempts(layout, row.id):
                a = _from_info(row, info, runners)
                if a is not None and a.attempt < row.attempt:
                    out.append(a)
    return out


def _latest(row: JobRow, hosts: Dict[int, str], layout: Layout) -> Optional[Attempt]:
    if row.started is None or row.slot is None or row.attempt < 1:
        return None
    status = row.status
    if status == "queued":              # an attempt ended and the job waits to run again
        info = read_info(layout, row.id)
        was = info.get("status") if info.get("attempt") == row.attempt else None
        status = was if was in RAN and was != "running" else "failed"
    elif status not in RAN or row.note == "cancelled before it started":
        return None
    ended = None if status == "running" else row.ended
    if ended is not None and ended < row.started:
        return None
    return Attempt(job=row.id, attempt=row.attempt, status=status, exit_code=row.exit_code,
                   signal=row.signal, runner=row.runner,
                   host=None if row.runner is None else hosts.get(row.runner),
                   slot=row.slot, gpus=tuple(g for g in (row.gpus or "").split(",") if g),
                   started=row.started, ended=ended, latest=row.status != "queued")


def _from_info(row: JobRow, info: dict, runners: List[RunnerRow]) -> Optional[Attempt]:
    started, ended = from_iso(info.get("started")), from_iso(info.get("ended"))
    slot, number = info.get("slot"), info.get("attempt")
    if started is None or ended is None or not isinstance(slot, int) \
            or not isinstance(number, int):
        return None
    host = info.get("host")
    runner = next((r.id for r in runners if r.host == host and r.started <= started
                   and (r.ended is None or started <= r.ended)), row.runner)
    gpus = info.get("gpus") or []
    return Attempt(job=row.id, attempt=number, status=str(info.get("status") or "failed"),
                   exit_code=info.get("exit_code"), signal=info.get("signal"), runner=runner,
                   host=host, slot=slot, gpus=tuple(str(g) for g in gpus), started=started,
                   ended=max(started, ended), latest=False)

