"""The store: an SQLite database in ``<output_dir>/.hog/`` that is the single source
of truth for a sweep. This module alone owns the schema.

Every state change of a job is committed here before it is acted on (a job is
``running`` in the store before its consumer is told to start it), so a crash at
any point leaves a state that ``recover`` can reconcile with the job folders.
Several processes (runners, and verbs such as ``hog add``) open it at once: WAL
mode, short ``BEGIN IMMEDIATE`` transactions, and a busy timeout.
"""
import json
import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from hog.backends.spawn import is_zombie, proc_start_time
from hog.errors import UsageError
from hog.model import Job, Status
from hog.state.files import from_iso

DB_NAME = "hog.sqlite"
SCHEMA_VERSION = 1
STALE_HEARTBEAT_S = 60.0
HEARTBEAT_S = 5.0

# The schema of each version, and how to go from version N-1 to N. A database of
# any earlier version is migrated in one transaction when it is opened.
SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,          -- N of the job folder <prefix>N
    source_pos  INTEGER UNIQUE,               -- position in the sweep's source, NULL if added
    name        TEXT,
    command     TEXT NOT NULL,
    spec        TEXT NOT NULL DEFAULT '{}',   -- JSON: gpus, resources, env, cwd, timeout, ...
    origin      TEXT NOT NULL DEFAULT '',     -- file:line it came from
    priority    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'queued',
    attempt     INTEGER NOT NULL DEFAULT 0,   -- attempts started so far
    runner      INTEGER,
    slot        INTEGER,
    gpus        TEXT,
    pid         INTEGER,
    exit_code   INTEGER,
    signal      TEXT,
    started     REAL,
    ended       REAL,
    added       REAL NOT NULL,
    cancel      INTEGER NOT NULL DEFAULT 0,   -- 1: a user asked to cancel it
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_by_status ON jobs (status, priority DESC, id);
CREATE INDEX jobs_by_name ON jobs (name);
CREATE TABLE runners (
    id           INTEGER PRIMARY KEY,
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    proc_start   TEXT NOT NULL DEFAULT '',    -- /proc start time, tells a reused pid apart
    gpus         TEXT NOT NULL,
    started      REAL NOT NULL,
    heartbeat    REAL NOT NULL,
    ended        REAL,
    request      TEXT,                        -- 'drain' | 'kill' from hog stop
    gpus_request TEXT                         -- a new --gpus spec from hog gpus DIR
);
"""
# Statements are split on ";", so comments in them must not hold one.
MIGRATIONS: Dict[int, str] = {1: SCHEMA_V1}

_INSERT = ("INSERT INTO jobs (id, source_pos, name, command, spec, origin, priority, added) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
JOB_COLUMNS = ("id, source_pos, name, command, spec, origin, priority, status, attempt, runner, "
               "slot, gpus, pid, exit_code, signal, started, ended, added, cancel, note")
FINAL = (Status.SUCCEEDED, Status.FAILED, Status.INTERRUPTED, Status.TIMEOUT, Status.CANCELLED,
         Status.SKIPPED, Status.UNSCHEDULABLE)
RERUNNABLE = ("failed", "interrupted", "timeout", "cancelled", "skipped", "unschedulable")
RESUMED = ("failed", "interrupted", "timeout", "skipped", "unschedulable")   # not cancelled


@dataclass(frozen=True)
class JobRow:
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

    def job(self) -> Job:
        spec = json.loads(self.spec)
        for key in ("resources", "env", "gpu_ids", "after"):
            if key in spec:
                spec[key] = tuple(tuple(x) if key in _PAIRS else x for x in spec[key])
        return Job(index=self.id, command=self.command, where=self.origin, name=self.name,
                   **spec)


class ResultRow(NamedTuple):
    """A job's columns for results files (``Store.result_rows``)."""
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


@dataclass(frozen=True)
class RunnerRow:
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


_DEFAULTS = Job(index=0, command="")
_SPEC_KEYS = ("gpus", "resources", "env", "cwd", "timeout", "retries", "priority", "gpu_ids",
              "after")
_PAIRS = ("resources", "env")


def job_spec(job: Job) -> str:
    """The job's options that differ from the defaults, as JSON."""
    spec = {}
    for key in _SPEC_KEYS:
        value = getattr(job, key)
        if value != getattr(_DEFAULTS, key):
            spec[key] = [list(x) for x in value] if key in _PAIRS else value
    return json.dumps(spec, sort_keys=True) if spec else "{}"


def check_private(path: str, what: str) -> None:
    """Refuse a queue others could write to, or that another user owns."""
    st = os.stat(path)
    if st.st_uid != os.geteuid():
        raise UsageError(f"{path}: {what} is owned by uid {st.st_uid}, not by you "
                         f"(uid {os.geteuid()}); refusing to run jobs from a queue someone "
                         f"else controls")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UsageError(f"{path}: {what} is writable by group or others "
                         f"(mode {stat.S_IMODE(st.st_mode):o}); anyone could add commands to "
                         f"your sweep. Fix with: chmod go-w {path}")


class Store:
    """One connection to a sweep's database."""

    def __init__(self, state_dir: str, create: bool = True, readonly: bool = False):
        """``readonly``: for views (reports) that must never write, even while runners
        are active; implies ``create=False``."""
        create = create and not readonly
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, DB_NAME)
        if create:
            os.makedirs(state_dir, mode=0o700, exist_ok=True)
        elif not os.path.exists(self.path):
            raise UsageError(f"{os.path.dirname(state_dir) or '.'}: no hog sweep here "
                             f"(no {os.path.join(os.path.basename(state_dir), DB_NAME)})")
        check_private(state_dir, "the queue directory")
        if create and not os.path.exists(self.path):
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        check_private(self.path, "the queue database")
        self.batching = False
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30,
                                      isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA busy_timeout = 30000")
            version = self.schema_version()
            if version < SCHEMA_VERSION:
                raise UsageError(f"{self.path}: written by an older hog (schema {version}); "
                                 f"'hog status' on its directory upgrades it")
            self._migrate()     # a newer schema: the same refusal as for writers
            return
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self._migrate()

    def close(self) -> None:
        self.db.close()

    # ----------------------------------------------------------- schema
    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise UsageError(f"{self.path}: made by a newer hog (schema {version}; this hog "
                             f"knows up to {SCHEMA_VERSION}); upgrade hog")
        with self.transaction():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def transaction(self):
        return _Transaction(self.db)

    def batch(self):
        """A turn of the runner: its single-statement writes join one transaction, begun
        by the first of them and committed when the turn ends (no write: no commit)."""
        return _Batch(self)

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        if self.batching and not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
        return self.db.execute(sql, args)

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap "anything new?"."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    # ------------------------------------------------------------- meta
    def meta(self, key: str) -> Optional[str]:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                        "DO UPDATE SET value = excluded.value", (key, value))

    # ---------------------------------------------------------- runners
    def register_runner(self, gpus: str) -> int:
        now = time.time()
        pid = os.getpid()
        cur = self._write(
            "INSERT INTO runners (pid, host, proc_start, gpus, started, heartbeat) "
            "VALUES (?, ?, ?, ?, ?, ?)", (pid, _host(), proc_start_time(pid), gpus, now, now))
        return cur.lastrowid

    def heartbeat(self, runner: int, gpus: Optional[str] = None) -> None:
        if gpus is None:
            self._write("UPDATE runners SET heartbeat = ? WHERE id = ?", (time.time(), runner))
        else:
            self._write("UPDATE runners SET heartbeat = ?, gpus = ? WHERE id = ?",
                            (time.time(), gpus, runner))

    def retire_runner(self, runner: int) -> None:
        self._write("UPDATE runners SET ended = ? WHERE id = ?", (time.time(), runner))

    def runner(self, runner: int) -> RunnerRow:
        return RunnerRow(*self.db.execute("SELECT * FROM runners WHERE id = ?",
                                          (runner,)).fetchone())

    def take_gpus_request(self, runner: int) -> Optional[str]:
        row = self.db.execute("SELECT gpus_request FROM runners WHERE id = ?",
                              (runner,)).fetchone()
        if row and row[0]:
            self._write("UPDATE runners SET gpus_request = NULL WHERE id = ?", (runner,))
            return row[0]
        return None

    def all_runners(self) -> List[RunnerRow]:
        """Every runner that ever worked on this queue, ended ones too (for reports)."""
        return [RunnerRow(*r) for r in self.db.execute("SELECT * FROM runners ORDER BY id")]

    def active_runners(self) -> List[RunnerRow]:
        rows = self.db.execute("SELECT * FROM runners WHERE ended IS NULL ORDER BY id")
        return [RunnerRow(*r) for r in rows]

    def live_runners(self) -> List[RunnerRow]:
        return [r for r in self.active_runners() if runner_alive(r)]

    def request(self, request: str, runner: Optional[int] = None) -> int:
        """Ask live runners (or one) to 'drain' or 'kill'; returns how many were asked."""
        ids = [r.id for r in self.live_runners() if runner is None or r.id == runner]
        for rid in ids:
            self.db.execute("UPDATE runners SET request = ? WHERE id = ?", (request, rid))
        return len(ids)

    def request_gpus(self, runner: int, spec: str) -> None:
        self.db.execute("UPDATE runners SET gpus_request = ? WHERE id = ?", (spec, runner))

    # ------------------------------------------------------- recovery
    def recover(self, folder_status) -> List[Tuple[JobRow, str]]:
        """Reconcile jobs left ``running`` by runners that died.

        ``folder_status(row)`` tells what the job folder says: None, or (verdict, INFO
        mapping) with verdict 'succeeded' or 'failed'. A folder with SUCCESS wins (its
        exit code and end time are taken from INFO); anything else that was running is
        recorded interrupted and queued again. Returns (row, new status) pairs.
        """
        changed = []
        with self.transaction():
            dead = [r for r in self.active_runners() if not runner_alive(r)]
            for r in dead:
                self.db.execute("UPDATE runners SET ended = ? WHERE id = ?", (time.time(), r.id))
            dead_ids = {r.id for r in dead}
            live_ids = {r.id for r in self.active_runners()}
            rows = self._rows("WHERE status = 'running'")
            for row in rows:
                if row.runner in live_ids and row.runner not in dead_ids:
                    continue
                verdict, info = folder_status(row) or (None, {})
                if verdict == "succeeded":
                    self.db.execute(
                        "UPDATE jobs SET status = 'succeeded', exit_code = ?, signal = ?, "
                        "ended = ?, note = 'recovered from its folder' WHERE id = ?",
                        (info.get("exit_code", 0), info.get("signal"),
                         from_iso(info.get("ended")) or time.time(), row.id))
                    changed.append((row, "succeeded"))
                else:
                    self.db.execute(
                        "UPDATE jobs SET status = 'queued', runner = NULL, pid = NULL, "
                        "note = ? WHERE id = ?",
                        (f"interrupted: its runner (pid {_runner_pid(self, row.runner)}) "
                         f"died; queued again", row.id))
                    changed.append((row, "interrupted"))
        return changed

    # ---------------------------------------------------------- ingest
    def ingest(self, jobs: Sequence[Job], resume: bool,
               runner: Optional[int] = None) -> Tuple[int, int, int]:
        """Insert jobs from the sweep's source (``Job.index`` = source position).

        New positions are queued. An existing position with the same command is kept
        as it is (when ``resume``: a failed, interrupted or never-finished one is queued
        again); one whose command changed is queued again with the new command.
        Returns (added, requeued, skipped: succeeded before ``runner`` started).
        """
        requeued = skipped = 0
        now = time.time()
        with self.transaction():
            positions = [j.index for j in jobs]
            existing = {}
            for chunk in _chunks(positions, 500):
                marks = ",".join("?" * len(chunk))
                for r in self.db.execute(
                        f"SELECT source_pos, id, command, status, runner FROM jobs "
                        f"WHERE source_pos IN ({marks})", chunk):
                    existing[r[0]] = r[1:]
            next_id = self._next_id()
            new_rows = []
            for job in jobs:
                old = existing.get(job.index)
                if old is None:
                    new_rows.append(self._row_values(next_id, job, job.index, now))
                    next_id += 1
                    continue
                jid, command, status, ran_by = old
                if command != job.command:
                    self.db.execute(
                        "UPDATE jobs SET command = ?, spec = ?, name = ?, origin = ?, "
                        "priority = ?, status = 'queued', cancel = 0, "
                        "note = 'command changed; queued again' WHERE id = ? "
                        "AND status != 'running'",
                        (job.command, job_spec(job), job.name, job.where, job.priority, jid))
                    requeued += 1
                elif status == "succeeded":
                    skipped += ran_by is None or ran_by != runner
                elif resume and status in RESUMED:
                    self.db.execute("UPDATE jobs SET status = 'queued', cancel = 0, "
                                    "note = 'queued again on resume' WHERE id = ?", (jid,))
                    requeued += 1
            self.db.executemany(_INSERT, new_rows)
        return len(new_rows), requeued, skipped

    def add(self, jobs: Iterable[Job]) -> List[int]:
        """Append jobs outside the sweep's source (``hog add``); returns their ids."""
        now = time.time()
        with self.transaction():
            next_id = self._next_id()
            rows = [self._row_values(next_id + i, job, None, now) for i, job in enumerate(jobs)]
            self.db.executemany(_INSERT, rows)
        return [r[0] for r in rows]

    def _next_id(self) -> int:
        """Folder numbers count from 0; call inside a write transaction."""
        return self.db.execute("SELECT coalesce(max(id) + 1, 0) FROM jobs").fetchone()[0]

    @staticmethod
    def _row_values(job_id: int, job: Job, source_pos: Optional[int], now: float) -> tuple:
        return (job_id, source_pos, job.name, job.command, job_spec(job), job.where,
                job.priority, now)

    # ------------------------------------------------------ scheduling
    def queued(self, limit: int, after: Tuple[int, int] = None) -> List[JobRow]:
        """The next queued jobs in run order: priority (high first), then id."""
        return self._rows("WHERE status = 'queued' ORDER BY priority DESC, id LIMIT ?",
                          (limit,))

    def claim(self, job_id: int, attempts: int, runner: int, slot: int,
              gpus: str) -> Optional[int]:
        """Mark a queued job running on this runner, if it is still queued with
        ``attempts`` attempts behind it (one statement, so atomic); returns its new
        attempt number, or None when another runner took it first or it changed."""
        cur = self._write(
            "UPDATE jobs SET status = 'running', runner = ?, slot = ?, gpus = ?, "
            "attempt = attempt + 1, pid = NULL, exit_code = NULL, signal = NULL, "
            "started = ?, ended = NULL, note = '' "
            "WHERE id = ? AND status = 'queued' AND attempt = ?",
            (runner, slot, gpus, time.time(), job_id, attempts))
        return attempts + 1 if cur.rowcount == 1 else None

    def started(self, job_id: int, pid: int, started: float,
                gpus: Optional[str] = None) -> None:
        """The job runs (``gpus``: the GPU ids, when known only now, as with Ray)."""
        self._write("UPDATE jobs SET pid = ?, started = ?, gpus = coalesce(?, gpus) "
                        "WHERE id = ?", (pid, started, gpus, job_id))

    def ended(self, job_id: int, status: Status, exit_code: Optional[int],
              signal: Optional[str], started: float, ended: float, note: str = "",
              requeue: bool = False) -> None:
        """Record how an attempt ended; ``requeue``: queue the job for another attempt."""
        final = "queued" if requeue else status.value
        self._write(
            "UPDATE jobs SET status = ?, exit_code = ?, signal = ?, started = ?, ended = ?, "
            "note = ?, runner = CASE WHEN ? THEN NULL ELSE runner END WHERE id = ?",
            (final, exit_code, signal, started, ended,
             note or ("" if not requeue else f"attempt ended {status.value}; retrying"),
             requeue, job_id))

    def set_status(self, job_id: int, status: Status, note: str = "") -> None:
        self._write("UPDATE jobs SET status = ?, note = ?, ended = ? WHERE id = ?",
                        (status.value, note, time.time(), job_id))

    def cancel_requested(self, runner: int) -> List[int]:
        return [r[0] for r in self.db.execute(
            "SELECT id FROM jobs WHERE status = 'running' AND runner = ? AND cancel = 1",
            (runner,))]

    def pending_request(self, runner: int) -> Optional[str]:
        row = self.db.execute("SELECT request FROM runners WHERE id = ?", (runner,)).fetchone()
        return row[0] if row else None

    # ---------------------------------------------------- verbs' queries
    def find(self, ref: str) -> List[JobRow]:
        """Jobs by folder number (``7`` or ``job_7``-style names) or by name."""
        rows = self._rows("WHERE name = ?", (ref,))
        if rows:
            return rows
        digits = ref.rsplit("_", 1)[-1] if not ref.isdigit() else ref
        if digits.isdigit():
            return self._rows("WHERE id = ?", (int(digits),))
        return []

    def by_name(self, name: str) -> List[JobRow]:
        return self._rows("WHERE name = ?", (name,))

    def cancel(self, job_id: int) -> str:
        """``hog kill``: cancel a job. Returns what happened."""
        with self.transaction():
            row = self.db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return "unknown"
            if row[0] == "queued":
                self.db.execute("UPDATE jobs SET status = 'cancelled', cancel = 1, ended = ?, "
                                "note = 'cancelled before it started' WHERE id = ?",
                                (time.time(), job_id))
                return "cancelled"
            if row[0] == "running":
                self.db.execute("UPDATE jobs SET cancel = 1 WHERE id = ?", (job_id,))
                return "stopping"
            return row[0]

    def retry(self, job_ids: Iterable[int]) -> List[int]:
        done = []
        with self.transaction():
            for jid in job_ids:
                cur = self.db.execute(
                    f"UPDATE jobs SET status = 'queued', cancel = 0, note = 'retry requested' "
                    f"WHERE id = ? AND status IN ({','.join('?' * len(RERUNNABLE))})",
                    (jid, *RERUNNABLE))
                if cur.rowcount:
                    done.append(jid)
        return done

    def failed_ids(self) -> List[int]:
        return [r[0] for r in self.db.execute(
            "SELECT id FROM jobs WHERE status IN ('failed', 'interrupted', 'timeout', "
            "'unschedulable', 'skipped') ORDER BY id")]

    def counts(self) -> Dict[str, int]:
        return dict(self.db.execute("SELECT status, count(*) FROM jobs GROUP BY status"))

    def rows_with_status(self, status: str, limit: int = 1000) -> List[JobRow]:
        return self._rows("WHERE status = ? ORDER BY id LIMIT ?", (status, limit))

    def all_rows(self) -> Iterable[JobRow]:
        cur = self.db.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id")
        for r in cur:
            yield JobRow(*r)

    def result_rows(self) -> Iterator["ResultRow"]:
        """Every job with what a results file shows (its runner's host too), by id;
        plain tuples, fast enough for 100,000 jobs at the end of a run."""
        cur = self.db.execute(
            "SELECT j.id, j.name, j.command, j.status, j.exit_code, j.signal, j.attempt, "
            "j.gpus, j.slot, j.runner, r.host, j.started, j.ended, j.note "
            "FROM jobs j LEFT JOIN runners r ON r.id = j.runner ORDER BY j.id")
        return map(ResultRow._make, cur)

    # ------------------------------------------------------ views' queries
    def latest_ended(self, statuses: Sequence[str], limit: int) -> List[JobRow]:
        """Jobs with one of ``statuses``, the one that ended last first."""
        marks = ",".join("?" * len(statuses))
        return self._rows(f"WHERE status IN ({marks}) ORDER BY ended DESC, id DESC LIMIT ?",
                          (*statuses, limit))

    def ended_since(self, since: float, limit: int = 10000) -> List[JobRow]:
        """Jobs that ended (for good, not for a retry) at ``since`` or later, in order."""
        marks = ",".join("?" * len(FINAL))
        return self._rows(f"WHERE ended >= ? AND status IN ({marks}) ORDER BY ended, id "
                          f"LIMIT ?", (since, *[s.value for s in FINAL], limit))

    def time_span(self) -> Tuple[Optional[float], Optional[float]]:
        """(the first start, the last end) of the sweep's jobs; None where none is known."""
        return tuple(self.db.execute("SELECT min(started), max(ended) FROM jobs").fetchone())

    def duration_stats(self) -> Tuple[int, float]:
        """(jobs that ran to an end, the sum of their durations in seconds)."""
        n, total = self.db.execute(
            "SELECT count(*), coalesce(sum(ended - started), 0) FROM jobs WHERE status IN "
            "('succeeded', 'failed', 'timeout') AND started IS NOT NULL "
            "AND ended IS NOT NULL").fetchone()
        return n, float(total)

    def row(self, job_id: int) -> Optional[JobRow]:
        rows = self._rows("WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def _rows(self, where: str, args: tuple = ()) -> List[JobRow]:
        return [JobRow(*r) for r in self.db.execute(f"SELECT {JOB_COLUMNS} FROM jobs {where}",
                                                     args)]


class _Batch:
    def __init__(self, store: "Store"):
        self.store = store

    def __enter__(self):
        self.store.batching = True
        return self.store

    def __exit__(self, exc_type, exc, tb):
        self.store.batching = False
        if self.store.db.in_transaction:
            self.store.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


class _Transaction:
    """A write transaction; nested ones join the outermost, which commits."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.outer = not self.db.in_transaction
        if self.outer:
            self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        if self.outer:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


def _chunks(items: Sequence, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _host() -> str:
    import socket
    return socket.gethostname()


def runner_alive(r: RunnerRow) -> bool:
    """Is this runner still running? On this host: its pid, with the same start time.
    Elsewhere: a heartbeat within ``STALE_HEARTBEAT_S``."""
    if r.ended is not None:
        return False
    if r.host != _host():
        return time.time() - r.heartbeat < STALE_HEARTBEAT_S
    start = proc_start_time(r.pid)
    if not start:                       # gone (or /proc unreadable: trust kill)
        try:
            os.kill(r.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not os.path.isdir("/proc/self")
    if is_zombie(r.pid):                # exited, not yet reaped by its parent
        return False
    return not r.proc_start or start == r.proc_start


def _runner_pid(store: "Store", runner: Optional[int]) -> str:
    if runner is None:
        return "?"
    row = store.db.execute("SELECT pid FROM runners WHERE id = ?", (runner,)).fetchone()
    return str(row[0]) if row else "?"
