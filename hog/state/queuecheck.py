"""Telling a lost queue from a new directory: the job folders are the sweep's second
record, so when ``.hog/hog.sqlite`` is missing, empty, corrupt, or replaced by a database
whose jobs do not match the folders, hog never takes the directory for a new one:
``check_queue`` refuses to run or queue anything there (``QueueLost``), naming ``hog
rebuild DIR`` (``state.rebuild``), which recreates the queue from the folders.

A sweep looks up every folder before it runs anything; the verbs (``hog add``,
``status``, ``stop``, ``kill``, ...) look up a ``SAMPLE`` of them (the first the
directory lists that hold an INFO), so that they cost the same on a sweep of a million
folders. A queue missing, empty or corrupt is found either way; a replaced one as soon
as a folder it does not know is among those looked up (any folder, for a fresh
database).
"""
import os
import re
import sqlite3
from typing import Dict, Iterator, List, Optional, Set, Tuple

from hog.errors import UsageError
from hog.state.db import DB_NAME
from hog.state.jobdir import INFO, STATE_DIR, Layout

FOLDER = re.compile(r"^(.*?)(\d+)$")     # <prefix><N>
SAMPLE = 64      # job folders a verb's check looks up (a sweep's own check: every one)


class QueueLost(UsageError):
    """Job folders exist but the queue that records them is missing, empty, corrupt or
    replaced: nothing is run or written (exit 2)."""


def hog_folders(root: str) -> Dict[int, str]:
    """Folders of ``root`` that hog wrote (``<prefix><N>`` holding an INFO or INFO.N),
    by number."""
    found: Dict[int, str] = {}
    for n, name in folder_numbers(root):
        if _has_info(os.path.join(root, name)):
            found.setdefault(n, name)
    return found


def _has_info(folder: str) -> bool:
    if os.path.exists(os.path.join(folder, INFO)):
        return True
    try:
        return any(n.startswith(INFO + ".") for n in os.listdir(folder))
    except OSError:
        return False


def queue_problem(root: str, sample: Optional[int] = None) -> Optional[Tuple[str, int]]:
    """('missing' | 'empty' | 'corrupt' | 'replaced', number of hog job folders) when
    ``root`` holds job folders that its queue does not record; None otherwise (no
    folders, or a queue that knows every one of them). ``sample``: only that many of
    hog's job folders (the first the directory lists) are looked up, so the check costs
    the same on a sweep of a million folders; None: every folder."""
    db = os.path.join(root, STATE_DIR, DB_NAME)
    if not os.path.isdir(root):
        return None
    try:
        size: Optional[int] = os.stat(db).st_size
    except FileNotFoundError:
        size = None
    except OSError:
        return None             # unreadable: the store's own checks say why
    folders = hog_folders(root) if size in (None, 0) else None
    if size is None:
        return ("missing", len(folders)) if folders else None
    if size == 0:
        return ("empty", len(folders)) if folders else None
    # the folders before the ids: a row is committed before its folder is made, so
    # none is missed
    numbers = folder_numbers(root) if sample is None else _first_hog_folders(root, sample)
    try:
        known = _job_ids(db, [n for n, _ in numbers])
    except sqlite3.OperationalError:
        return None             # locked or unreadable: the store's own checks say why
    except sqlite3.DatabaseError:
        folders = hog_folders(root)
        return ("corrupt", len(folders)) if folders else None
    unknown = [name for n, name in numbers if n not in known
               and _has_info(os.path.join(root, name))]
    return ("replaced", len(hog_folders(root))) if unknown else None


def _job_ids(db: str, numbers: List[int]) -> Set[int]:
    """Those of ``numbers`` that are jobs of the queue: looked up, so a queue of a
    million jobs with few folders is not read whole."""
    con = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=30)   # never creates
    try:
        con.execute("PRAGMA busy_timeout = 30000")
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone():
            return set()
        known: Set[int] = set()
        for i in range(0, len(numbers), 500):
            chunk = numbers[i:i + 500]
            known.update(r[0] for r in con.execute(
                f"SELECT id FROM jobs WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return known
    finally:
        con.close()


def folder_numbers(root: str) -> List[Tuple[int, str]]:
    """(N, name) of every folder of ``root`` named like a job folder, in the order the
    directory lists them."""
    return list(_folders(root))


def _first_hog_folders(root: str, n: int) -> List[Tuple[int, str]]:
    """(N, name) of the first ``n`` folders of ``root`` that hog wrote (with an INFO)."""
    found: List[Tuple[int, str]] = []
    for number, name in _folders(root):
        if _has_info(os.path.join(root, name)):
            found.append((number, name))
            if len(found) == n:
                break
    return found


def _folders(root: str) -> Iterator[Tuple[int, str]]:
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                m = FOLDER.match(entry.name)
                if m is not None and not entry.name.startswith(".") \
                        and entry.is_dir(follow_symlinks=False):
                    yield int(m.group(2)), entry.name
    except OSError:
        return


def lost_message(output_dir: str, kind: str, n: int) -> str:
    out = output_dir.rstrip("/") or output_dir
    return (f"{out}/ holds {n} job folder(s) but its queue ({STATE_DIR}/{DB_NAME}) is "
            f"{kind}; nothing was run or overwritten; to rebuild the queue from the job "
            f"folders: hog rebuild {out}")


def check_queue(root: str, output_dir: Optional[str] = None,
                sample: Optional[int] = None) -> None:
    """Refuse (``QueueLost``) an output directory whose job folders its queue lost;
    ``output_dir``: how the user spelled ``root``, for the message; ``sample``: as for
    ``queue_problem``."""
    problem = queue_problem(root, sample)
    if problem is not None:
        raise QueueLost(lost_message(output_dir or root, *problem))


def check_output(layout: Layout, output_dir: str, sample: Optional[int] = None) -> None:
    """Before anything is written there: refuse an output directory whose job folders
    its queue does not record (folders from elsewhere, or a queue missing, empty,
    corrupt or replaced). It only reads; a sweep, ``--detach`` and ``hog add`` run it
    before they create anything (a sweep looks at every folder, ``hog add`` at a
    ``sample``)."""
    check_queue(layout.root, output_dir, sample)
    if not os.path.exists(os.path.join(layout.state_dir, DB_NAME)) \
            and os.path.isdir(layout.root):
        existing = layout.existing_job_folders()
        if existing:
            out = output_dir.rstrip("/") or output_dir
            raise UsageError(f"{out}/ holds job folders ({', '.join(existing)}, ...) but "
                             f"no hog queue; nothing is overwritten: use another "
                             f"--output_dir, or --fresh to move that one aside")
