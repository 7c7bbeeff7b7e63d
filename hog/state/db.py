"""The sweep's SQLite database in ``<output_dir>/.hog/``: the connection, migrating
it to the current schema (``state.schema``), transactions, ``meta``, and the checks
that the queue is private.

Every role of the store sits on one connection opened here:

- ``Database``: opening (writable, or ``readonly`` for views), the schema version,
  ``data_version`` and ``meta``; nothing on it writes once the schema is in place;
- ``Writer(Database)``: ``transaction``, ``batch`` and ``set_meta``, what the writing
  roles (``state.jobs``, ``state.runners``) build on.

A batch the disk refuses (full, read-only: ``diskguard.cannot_write``) is rolled back
and its writes are kept (``unsaved``): the next batch (``RETRY_S`` later) applies them
first, so a failed commit loses nothing; ``write_error`` says why meanwhile.

Several processes (runners, and verbs such as ``hog add``) open the file at once:
WAL mode, short ``BEGIN IMMEDIATE`` transactions, and a busy timeout. SQL is
written only in ``hog/state``.
"""
import os
import sqlite3
import stat
import time
from types import TracebackType
from typing import List, Literal, Optional, Tuple, Type

from hog.errors import HogError, UsageError
from hog.state.diskguard import cannot_write
from hog.state.files import check_location
from hog.state.identity import spec_digest, stored_given_name
from hog.state.rows import JOB_COLUMNS, JobRow
from hog.state.schema import FRESH, KEY_ROWS_BY_POSITION, MIGRATIONS, SCHEMA_VERSION

DB_NAME = "hog.sqlite"
RETRY_S = 0.5       # a batch the disk refused is tried again after this long

class StoreCorrupt(HogError):
    """The queue's file is not a readable SQLite database (exit 2)."""

    def __init__(self, path: str, error: sqlite3.DatabaseError):
        root = os.path.dirname(os.path.dirname(path)) or "."
        super().__init__(f"{path}: the queue is corrupt ({error}); nothing was run or "
                         f"overwritten; to rebuild the queue from the job folders: "
                         f"hog rebuild {root}")


def check_private(path: str, what: str) -> None:
    """Refuse a queue others could write to, that another user owns, or that is a
    symbolic link (someone could point it at a queue of theirs)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(f"{path}: {what} is a symbolic link; refusing to follow it (someone "
                         f"may have planted it): remove it, or use another --output_dir")
    if st.st_uid != os.geteuid():
        raise UsageError(f"{path}: {what} is owned by uid {st.st_uid}, not by you "
                         f"(uid {os.geteuid()}); refusing to run jobs from a queue someone "
                         f"else controls")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UsageError(f"{path}: {what} is writable by group or others "
                         f"(mode {stat.S_IMODE(st.st_mode):o}); anyone could add commands to "
                         f"your sweep. Fix with: chmod go-w {path}")


def _file_identity(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Database:
    """One connection to a sweep's database: the object every role of the store shares."""

    def __init__(self, state_dir: str, create: bool = True, readonly: bool = False):
        """``readonly``: for views (reports) that must never write, even while runners
        are active; implies ``create=False``."""
        create = create and not readonly
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, DB_NAME)
        if os.path.islink(state_dir):
            check_private(state_dir, "the queue directory")
        if create:
            check_location(os.path.dirname(state_dir) or ".")
            os.makedirs(state_dir, mode=0o700, exist_ok=True)
        elif not os.path.lexists(self.path):
            raise UsageError(f"{os.path.dirname(state_dir) or '.'}: no hog sweep here "
                             f"(no {os.path.join(os.path.basename(state_dir), DB_NAME)})")
        check_private(state_dir, "the queue directory")
        if create and not os.path.lexists(self.path):
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        check_private(self.path, "the queue database")
        self.batching = False
        # writes of batches the disk refused (full, read-only), applied by a later one
        self.unsaved: List[Tuple[str, tuple]] = []
        self._turn: List[Tuple[str, tuple]] = []       # this batch's writes so far
        # a batch that claimed nothing may leave its writes for a later one to commit,
        # up to ``hold_s`` after the first of them (the run loop's, with claims ahead)
        self.hold_s = 0.0
        self.held_since: Optional[float] = None
        self.claimed_now = False
        self.write_error: Optional[str] = None         # why the last batch was refused
        self._retry_at = 0.0
        try:
            self._connect(readonly)
        except sqlite3.OperationalError:    # locked, I/O: not the file's content
            raise
        except sqlite3.DatabaseError as e:  # not a database, malformed
            if getattr(self, "db", None) is not None:
                self.db.close()
            raise StoreCorrupt(self.path, e) from None

    def _connect(self, readonly: bool) -> None:
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
        # synchronous first: a new file then becomes a WAL database with one sync, not
        # the several of the default FULL (tens of milliseconds on a busy disk)
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA journal_mode = WAL")
        # statement journals in memory: each insert fires the counting triggers
        # (state.schema version 4), and a journal file per statement costs a system call
        self.db.execute("PRAGMA temp_store = MEMORY")
        # what migration 2 computes the identity keys of older rows with
        self.db.create_function("hog_spec_digest", 2, spec_digest, deterministic=True)
        self.db.create_function("hog_given_name", 2, stored_given_name, deterministic=True)
        self._migrate()
        self.identity = _file_identity(self.path)

    def lost(self) -> bool:
        """The database file this connection writes was deleted or replaced since it was
        opened (``.hog/`` removed, the file moved): writes now reach no file."""
        return _file_identity(self.path) != getattr(self, "identity", None)

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
        with Transaction(self.db):
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and self._empty():
                self._execute_script(FRESH)     # a new queue: the latest schema at once
            else:
                for v in range(version + 1, SCHEMA_VERSION + 1):
                    self._execute_script(MIGRATIONS[v])
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _empty(self) -> bool:
        """A file with no table yet (a new queue), not one of version 0 with tables."""
        return self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0

    def _execute_script(self, script: str) -> None:
        """Run ``script`` statement by statement inside the open transaction (unlike
        ``executescript``, which commits); a piece that ends inside a statement (a
        trigger's body) is joined to the next. An empty script does nothing."""
        pending = ""
        for piece in script.split(";"):
            pending += piece + ";"
            if sqlite3.complete_statement(pending):
                if pending.strip(" \n;"):
                    self.db.execute(pending)
                pending = ""
        if pending.strip(" \n;"):
            self.db.execute(pending)

    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap "anything new?"."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    # ------------------------------------------------------------- meta
    def meta(self, key: str) -> Optional[str]:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------- rows
    def _rows(self, where: str, args: tuple = ()) -> List[JobRow]:
        """Job rows ``SELECT``ed with ``where`` (its ``INDEXED BY``, ``WHERE``, ``ORDER
        BY``, ``LIMIT``)."""
        return [JobRow(*r) for r in self.db.execute(f"SELECT {JOB_COLUMNS} FROM jobs {where}",
                                                     args)]


class Writer(Database):
    """The writes every writing role shares: transactions, the runner's batch, meta."""

    def transaction(self) -> "Transaction":
        return Transaction(self.db)

    def batch(self) -> "Batch":
        """A turn of the runner: its single-statement writes join one transaction, begun
        by the first of them and committed when the turn ends (no write: no commit)."""
        return Batch(self)

    def _write(self, sql: str, args: tuple = (), keep: bool = True) -> Optional[sqlite3.Cursor]:
        """One write; in a batch, None when the disk refuses it (see ``Batch``). ``keep``:
        a write that stays true if applied later (not a claim, which is decided now)."""
        if not self.batching:
            return self.db.execute(sql, args)
        if self.write_error is None:
            try:
                if not self.db.in_transaction:
                    self._begin()
                cur = self.db.execute(sql, args)
                if keep:
                    self._turn.append((sql, args))
                return cur
            except sqlite3.Error as e:
                why = cannot_write(e)
                if why is None:
                    raise
                self.batch_failed(why)
        if keep:
            self.unsaved.append((sql, args))
        return None

    def _begin(self) -> None:
        """Begin the batch's transaction, with the writes earlier batches could not commit."""
        self.db.execute("BEGIN IMMEDIATE")
        for sql, args in self.unsaved:
            self.db.execute(sql, args)

    def batch_failed(self, why: str) -> None:
        """The disk refused this batch (full, read-only): roll it back and keep its
        writes (``unsaved``) for a later batch; until ``RETRY_S`` has passed, writes
        only join them."""
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        self.unsaved.extend(self._turn)
        self._turn.clear()
        self.held_since = None
        self.write_error = why
        self._retry_at = time.monotonic() + RETRY_S

    def commit_turn(self) -> bool:
        """Commit the batch's writes so far (before a write with its own transaction);
        False when the disk refuses them, or refused an earlier one this turn."""
        if self.write_error is not None:
            return False
        if self.batching and self.db.in_transaction:
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error as e:
                why = cannot_write(e)
                if why is None:
                    raise
                self.batch_failed(why)
                return False
            self.held_since = None
            self.unsaved.clear()
            self._turn.clear()
        return True

    def retry_now(self) -> None:
        """Let the next batch try the disk again at once (at the end of a run)."""
        self._retry_at = 0.0

    def key_rows_by_position(self) -> None:
        """Give the rows that have a source position but no identity key yet the keys
        their source gives them (for rows written without one, e.g. restored ones)."""
        with self.transaction():
            self._execute_script(KEY_ROWS_BY_POSITION)

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                        "DO UPDATE SET value = excluded.value", (key, value))


class Batch:
    """``Writer.batch()``: gives the writer itself to the block."""

    def __init__(self, store: Writer):
        self.store = store

    def __enter__(self) -> Writer:
        store = self.store
        store.batching = True
        store.claimed_now = False
        if store.write_error is not None and time.monotonic() >= store._retry_at:
            store.write_error = None        # try the disk again
        if store.unsaved and store.write_error is None:
            try:
                store._begin()
            except sqlite3.Error as e:
                why = cannot_write(e)
                if why is None:
                    raise
                store.batch_failed(why)
        return store

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        store = self.store
        store.batching = False
        if store.write_error is not None:       # refused this turn: kept in ``unsaved``
            return False
        if not store.db.in_transaction:
            store._turn.clear()
            return False
        why = None if exc is None else cannot_write(exc)
        if exc_type is not None and why is None:
            store.db.execute("ROLLBACK")
            store.held_since = None
            store._turn.clear()
            return False
        if why is None and not store.claimed_now and store.hold_s:
            now = time.monotonic()
            if store.held_since is None:
                store.held_since = now
            if now - store.held_since < store.hold_s:
                return False            # (committed with a later batch's writes)
        if why is None:
            try:
                store.db.execute("COMMIT")
                store.held_since = None
                store.unsaved.clear()
                store._turn.clear()
                return False
            except sqlite3.Error as e:
                why = cannot_write(e)
                if why is None:
                    raise
        store.batch_failed(why)
        return False


class Transaction:
    """A write transaction; nested ones join the outermost, which commits."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.outer = not self.db.in_transaction
        if self.outer:
            self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> Literal[False]:
        if not self.outer:
            return False
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return False
            except sqlite3.Error:
                self._rollback()    # a failed commit (disk full) may leave it open
                raise
        self._rollback()
        return False

    def _rollback(self) -> None:
        """Roll back, if SQLite has not already (it does on a full disk)."""
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
