"""Rebuilding the queue from the job folders (``hog rebuild DIR``), the sweep's second
record.

Every attempt leaves an ``INFO`` in its folder (earlier ones as ``INFO.N``) naming the
job, its command, options, origin, status, attempt and times. So when
``.hog/hog.sqlite`` is missing, empty, corrupt, or replaced by a database whose jobs do
not match the folders (``state.queuecheck`` refuses to run anything there),
``rebuild`` moves the broken database aside and recreates one job row per folder with
its final status, so that the next run runs only what had not succeeded.
"""
import json
import os
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional

from hog.errors import HogError, UsageError
from hog.model import USAGE_FIELDS, Status
from hog.proc import runs_job_of
from hog.state.db import DB_NAME
from hog.state.files import from_iso
from hog.state.jobdir import STATE_DIR, Layout
from hog.state.jobread import earlier_attempts, folder_verdict, read_info
from hog.state.queuecheck import FOLDER, hog_folders, queue_problem
from hog.state.rows import PARAM_KEYS, REBUILT
from hog.state.schema import MIGRATIONS
from hog.state.store import Store

_FINAL = {s.value for s in Status if s.finished}
BROKEN_SUFFIXES = ("", "-wal", "-shm", "-journal")
_COLUMNS = ("id", "source_pos", "name", "command", "spec", "origin", "priority", "status",
            "attempt", "slot", "gpus", "pid", "exit_code", "signal", "started", "ended", "note")


@dataclass(frozen=True)
class Rebuilt:
    """What ``rebuild`` did: job rows per status, the prefix, where the old file went."""

    counts: Dict[str, int]
    prefix: str
    moved_to: Optional[str]


# ------------------------------------------------------------------ rebuild
def rebuild(output_dir: str, force: bool = False) -> Rebuilt:
    """Recreate the queue of ``output_dir`` from its job folders.

    A database that is there (corrupt, empty, or not matching the folders) is first
    moved aside to ``hog.sqlite.broken-TIME`` (with its -wal and -shm), never deleted;
    refused while a runner is active on a readable one, while a job of a folder without
    a marker still runs, and (unless ``force``) when the queue records every folder.
    Each folder becomes one job row: its number, name, command, options (with a grid
    point's parameters), origin, source position, attempt count, times, what its last
    attempt used (CPU, memory, GPU figures), and its status (SUCCESS: succeeded;
    FAILURE: INFO's final status, else failed; no marker: interrupted, run again on
    resume)."""
    root = output_dir
    folders = hog_folders(root)
    if not folders:
        raise UsageError(f"{output_dir}: no job folders to rebuild a queue from")
    if not force and queue_problem(root) is None:
        raise UsageError(f"hog rebuild: the queue of {output_dir}/ records every job folder; "
                         f"nothing to rebuild (--force rebuilds it anyway: jobs queued but "
                         f"never started, which have no folder, would be left out)")
    state_dir = os.path.join(root, STATE_DIR)
    db = os.path.join(state_dir, DB_NAME)
    prefix = _prefix_of(folders)
    layout = Layout(root, prefix)
    rows = _one_per_position([_row_of(layout, n, name) for n, name in sorted(folders.items())])
    if os.path.exists(db):
        _refuse_if_live(state_dir, output_dir)
    for row in rows:
        folder = os.path.join(root, folders[row["id"]])
        if row["status"] == "interrupted" and row["pid"] and runs_job_of(row["pid"], folder):
            raise UsageError(f"hog rebuild: {folders[row['id']]} still runs (pid {row['pid']})"
                             f": its runner may still be active on {output_dir}/ (it starts "
                             f"no new job once its queue is gone); let it end, then run hog "
                             f"rebuild again")
    moved = None
    if os.path.exists(db):
        moved = f"{db}.broken-{time.strftime('%Y%m%d-%H%M%S')}"
        for suffix in BROKEN_SUFFIXES:
            if os.path.exists(db + suffix):
                os.replace(db + suffix, moved + suffix)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    _write_v1(db, rows, prefix)
    store = Store(state_dir)            # migrates the rows to the current schema
    try:
        store.restore_idents({row["id"]: row["ident"] for row in rows if row["ident"]})
        store.restore_usage({row["id"]: row["usage"] for row in rows if row["usage"]})
        params = sorted({str(pair[0]) for row in rows
                         for pair in json.loads(row["spec"]).get("params", ())
                         if isinstance(pair, list) and pair})
        if params:                      # the grid's columns of the results files
            store.set_meta(PARAM_KEYS, json.dumps(params))
        counts = store.counts()
    finally:
        store.close()
    return Rebuilt(counts, prefix, moved)


def _one_per_position(rows: List[dict]) -> List[dict]:
    """After an edited source, two folders can name one source position (each from the
    reading that ran it): the one that started last keeps it, the others get none (their
    identity keys, from INFO, still tie them to their jobs)."""
    latest: Dict[int, dict] = {}
    for row in rows:
        pos = row["source_pos"]
        if pos is None:
            continue
        other = latest.get(pos)
        if other is None or (row["started"] or 0) >= (other["started"] or 0):
            if other is not None:
                other["source_pos"] = None
            latest[pos] = row
        else:
            row["source_pos"] = None
    return rows


def _write_v1(db: str, rows: List[dict], prefix: str) -> None:
    """A new database of schema version 1 holding ``rows``: opening it with ``Store``
    then migrates them as it would any version-1 queue, so the rows get whatever later
    versions derive from a job's command, options and source position."""
    os.close(os.open(db, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    now = time.time()
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        for statement in MIGRATIONS[1].split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute("PRAGMA user_version = 1")
        con.executemany(
            f"INSERT INTO jobs ({', '.join(_COLUMNS)}, added) "
            f"VALUES ({', '.join('?' * len(_COLUMNS))}, ?)",
            [tuple(row[c] for c in _COLUMNS) + (row["started"] or now,) for row in rows])
        con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("prefix", prefix), (REBUILT, time.strftime("%Y-%m-%dT%H:%M:%S"))])
        con.execute("COMMIT")
    finally:
        con.close()


def _refuse_if_live(state_dir: str, output_dir: str) -> None:
    try:
        probe = Store(state_dir, create=False)
    except (HogError, sqlite3.DatabaseError):
        return                  # corrupt or unreadable: no runner can be using it
    try:
        live = probe.live_runners()
    except sqlite3.DatabaseError:
        live = []
    finally:
        probe.close()
    if live:
        raise UsageError(f"hog rebuild: a runner is active on {output_dir}/ (pid "
                         f"{live[0].pid}); stop it first (hog stop {output_dir})")


def _prefix_of(folders: Dict[int, str]) -> str:
    stems = Counter(FOLDER.match(name).group(1) for name in folders.values())  # type: ignore
    return stems.most_common(1)[0][0]


def _row_of(layout: Layout, n: int, folder_name: str) -> dict:
    """The job row a folder tells of (``Jobs.restore`` writes it)."""
    here = Layout(layout.root, folder_name[:-len(str(n))] if folder_name != str(n) else "")
    info = read_info(here, n)
    earlier = earlier_attempts(here, n)
    latest = info or (earlier[-1] if earlier else {})
    verdict = folder_verdict(here, n)
    status = latest.get("status")
    if verdict == "succeeded":
        status = "succeeded"
    elif verdict == "failed":
        status = status if status in _FINAL and status != "succeeded" else "failed"
    else:
        status = "interrupted"          # it was running (or never ended): run it again
    name = latest.get("name")
    try:
        spec = json.loads(latest.get("options") or "{}")
    except (TypeError, ValueError):
        spec = {}
    if not isinstance(spec, dict):
        spec = {}
    attempts: List[int] = [a["attempt"] for a in earlier + [info]
                           if isinstance(a.get("attempt"), int)]
    origin = str(latest.get("origin") or "")
    pos = latest.get("source_pos")
    if "source_pos" not in latest:      # written by a hog that did not record it
        pos = None if origin.startswith("hog add") else n
    gpus = latest.get("gpus")
    priority = spec.get("priority", 0)

    def whole(key: str) -> Optional[int]:
        value = latest.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return {
        "id": n, "source_pos": pos if isinstance(pos, int) else None,
        "name": None if name in (None, folder_name) else str(name),
        "command": str(latest.get("command") or ""),
        "spec": json.dumps(spec, sort_keys=True) if spec else "{}",
        "origin": origin, "priority": priority if isinstance(priority, int) else 0,
        "status": status, "attempt": max(attempts, default=1),
        "slot": whole("slot"), "pid": whole("pid"), "exit_code": whole("exit_code"),
        "gpus": ",".join(map(str, gpus)) if isinstance(gpus, list) else None,
        "signal": latest.get("signal") if isinstance(latest.get("signal"), str) else None,
        "started": from_iso(latest.get("started")) if latest.get("started") else None,
        "ended": from_iso(latest.get("ended")) if latest.get("ended") else None,
        "note": "rebuilt from its folder",
        "ident": latest.get("ident") if isinstance(latest.get("ident"), str) else None,
        "usage": {k: latest[k] for k in USAGE_FIELDS if isinstance(latest.get(k), (int, float))
                  and not isinstance(latest.get(k), bool)},    # what its last attempt used
    }
