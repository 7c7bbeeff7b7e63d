"""When the results files are current: ``results.jsonl`` and ``.csv`` dated against the
store's last change (its file's, its write-ahead log's), so that a reader (``hog
report``) writes them again only when the store changed after them. File times only:
the files' contents are ``hog.state.resultfiles``'.
"""
import os
import sqlite3

from hog.state.db import DB_NAME
from hog.state.jobdir import RESULTS_CSV, RESULTS_JSONL, Layout
from hog.state.reading import SweepReader

__all__ = ["results_current", "date_results", "date_after_store", "checkpoint"]


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


def date_after_store(layout: Layout) -> None:
    """Files written from a store nobody else changed meanwhile, dated after the store's
    last change even where both fall in the same tick of the file clock (a few ms)."""
    db = os.path.join(layout.state_dir, DB_NAME)
    try:
        changed = max(os.stat(path).st_mtime_ns for path in (db, db + "-wal")
                      if os.path.exists(path))
        for name in (RESULTS_JSONL, RESULTS_CSV):
            path = layout.sweep_file(name)
            if os.stat(path).st_mtime_ns <= changed:
                os.utime(path, ns=(changed + 1000, changed + 1000))
    except (OSError, ValueError):
        pass


def checkpoint(store: SweepReader) -> None:
    """The log's pages into the store's file now, not when it closes after the results
    are written: the results files stay newer than the store (``results_current``).
    Best effort: a reader that cannot checkpoint leaves the files to be dated by it."""
    try:
        store.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass
