"""What happened in a sweep, as data: one record per job for scripts and notebooks
(``results.jsonl`` and ``results.csv`` beside the job folders), and every attempt of
every job for the report's timeline.

A record is flat (no nested values) and always has the same keys in the same order,
so ``pandas.read_json(path, lines=True)`` and ``pandas.read_csv(path)`` give a clean
frame: times are UTC ISO 8601 in ``started_at`` / ``ended_at`` (pandas parses those
names as datetimes) and seconds since the epoch in ``started_epoch`` / ``ended_epoch``.
The files are rewritten whole (atomically) by ``hog report`` and at the end of every
runner's run; the store stays the source of truth.
"""
import csv
import json
import math
import os
import sqlite3
import sys
import time
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from hog.model import USAGE_FIELDS, Status, slot_label
from hog.state.db import DB_NAME
from hog.state.files import UnsafePath, from_iso, replaced_atomically
from hog.state.jobdir import (
    RESULTS_CSV,
    RESULTS_JSONL,
    Layout,
    earlier_attempts,
    read_info,
)
from hog.state.reading import SweepReader
from hog.state.rows import JobRow, ResultRow, RunnerRow

FIELDS = ("index", "name", "folder", "command", "status", "exit_code", "signal", "attempts",
          "gpus", "slot", "runner", "host", "started_at", "ended_at", "started_epoch",
          "ended_epoch", "duration_s", "note", "in_source") + USAGE_FIELDS
# (USAGE_FIELDS: what the latest attempt used, ``model.Usage``; empty where not known)


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


def record(row: ResultRow, layout: Layout) -> dict:
    """The flat record of one job (its latest attempt)."""
    (index, name, command, status, exit_code, signal, attempt, gpus, slot, runner, host,
     started, ended, note, in_source) = row[:15]
    if status == "running":
        ended = None
    folder = layout.folder_name(index)
    return {
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


def records(store: SweepReader, layout: Layout) -> Iterator[dict]:
    """Every job's record, by index: what ``results.jsonl`` holds."""
    for row in store.result_rows():
        yield record(row, layout)


def write_results(store: SweepReader, layout: Layout) -> Tuple[str, str]:
    """Write ``results.jsonl`` and ``results.csv`` (each atomically); returns their paths."""
    jsonl, csv_path = layout.sweep_file(RESULTS_JSONL), layout.sweep_file(RESULTS_CSV)
    dumps = json.JSONEncoder(separators=(", ", ": ")).encode
    with replaced_atomically(jsonl) as jf, replaced_atomically(csv_path) as cf:
        writer = csv.writer(cf, lineterminator="\n")
        writer.writerow(FIELDS)
        for rec in records(store, layout):
            jf.write(dumps(rec) + "\n")
            writer.writerow(["" if v is None else v for v in rec.values()])
    return jsonl, csv_path


def results_current(layout: Layout) -> bool:
    """Whether ``results.jsonl`` and ``.csv`` are both newer than the store's last change
    (its file's or its write-ahead log's time), so that writing them again would give
    the same files (a change made while they were written dates them older: see
    ``date_results``)."""
    try:
        made = min(os.stat(layout.sweep_file(name)).st_mtime_ns
                   for name in (RESULTS_JSONL, RESULTS_CSV))
        db = os.path.join(layout.state_dir, DB_NAME)
        changed = os.stat(db).st_mtime_ns
        wal = os.stat(db + "-wal") if os.path.exists(db + "-wal") else None
        if wal is not None and wal.st_size:     # empty: a reader made it, nothing new
            changed = max(changed, wal.st_mtime_ns)
    except (OSError, ValueError):
        return False
    return made > changed


def date_results(layout: Layout, read_from: float) -> None:
    """Date the results files just written as of ``read_from`` (less a margin: file
    times lag the clock by a tick), for when the store changed while they were
    written: they are then older than the store, and written again next time."""
    at = int((read_from - 0.05) * 1e9)
    for name in (RESULTS_JSONL, RESULTS_CSV):
        os.utime(layout.sweep_file(name), ns=(at, at))


def save_results(store: SweepReader, layout: Layout) -> None:
    """``write_results`` for the end of a run: a failure is reported, never raised."""
    try:
        # the log's pages into the file first, not when the store closes after: the
        # results files stay newer than the store (``results_current``)
        store.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        read_from, version = time.time(), store.data_version()
        write_results(store, layout)
        if store.data_version() != version:     # another shell wrote meanwhile
            date_results(layout, read_from)
    except (OSError, sqlite3.Error, UnsafePath) as e:
        print(f"hog: could not write {layout.sweep_file(RESULTS_JSONL)}: {e}", file=sys.stderr)


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

