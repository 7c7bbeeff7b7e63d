"""``hog watch DIR``: run scripts dropped into ``DIR/to_run/`` (fastgpu's model).

Each script is queued in natural sort order (``s2`` before ``s10``) and stays in
``to_run/`` until it starts: ``start`` moves it to ``running/`` as its job is handed
to a slot, so ``running/`` holds exactly the scripts that run, and a script not
started when hog stops is still in ``to_run/`` (its queued row is dropped:
``forget`` in the store, the next watch queues it again). When it ends it moves to
``complete/`` or ``fail/`` with its ``.stdout``, ``.stderr`` and ``.exitcode`` beside
it. Its job folder is kept in the sweep's output directory as for any job.

- A queued script's name in ``running/`` is chosen when it is queued (``NAME``, or
  ``NAME.N`` when taken); it is the job's name. A script removed from ``to_run/``
  before it started ends ``cancelled`` without running.

- A half-copied script is never started: a file is taken only once its size and
  mtime are unchanged across two scans and it is at least ``SETTLE_S`` old, and
  names that editors and copy tools use for partial files are ignored.
- A name clash never loses a script: moves never overwrite (``os.link`` then
  ``unlink``); a clashing name gets a ``.1``, ``.2``... suffix.
- A script whose name is not valid UTF-8 cannot be recorded: it is left in ``to_run/``
  and the watch ends with an input error naming it.
"""
import os
import re
import shlex
import shutil
import time
from typing import Dict, Iterator, List, Optional, Set, Tuple

from hog.errors import InputError
from hog.model import Job, Outcome, Status

SETTLE_S = 1.0
SCAN_S = 0.5
FOLDERS = ("to_run", "running", "complete", "fail")
_PARTIAL = re.compile(r"(^\.|~$|\.(tmp|part|partial|swp|crdownload)$)", re.IGNORECASE)


def natural_key(name: str) -> List:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def prepare(directory: str) -> None:
    for sub in FOLDERS:
        os.makedirs(os.path.join(directory, sub), exist_ok=True)


def move_no_clobber(src: str, dest_dir: str, name: str) -> Optional[str]:
    """Move ``src`` into ``dest_dir`` as ``name`` (or ``name.N`` if taken) without ever
    overwriting; None if ``src`` vanished (another watcher took it)."""
    n = 0
    while True:
        candidate = os.path.join(dest_dir, name if n == 0 else f"{name}.{n}")
        try:
            os.link(src, candidate)
        except FileExistsError:
            n += 1
            continue
        except FileNotFoundError:
            return None
        except OSError:                       # no hard links here: fall back to rename
            if os.path.exists(candidate):
                n += 1
                continue
            try:
                os.rename(src, candidate)
            except FileNotFoundError:
                return None
            return candidate
        try:
            os.unlink(src)
        except FileNotFoundError:             # taken by another watcher at the same time
            os.unlink(candidate)
            return None
        return candidate


class Scanner:
    """Finds scripts in ``to_run/`` that are complete and ready to start."""

    def __init__(self, directory: str, settle_s: float = SETTLE_S):
        self.to_run = os.path.join(directory, "to_run")
        self.settle_s = settle_s
        self.seen: Dict[str, Tuple[int, int, float]] = {}

    def scan(self) -> Tuple[List[str], int]:
        """(names ready to run in natural order, number of files still settling)."""
        ready, waiting, now, seen = [], 0, time.time(), {}
        try:
            entries = list(os.scandir(self.to_run))
        except FileNotFoundError:
            return [], 0
        for entry in entries:
            if _PARTIAL.search(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            sig = (st.st_ino, st.st_size, st.st_mtime)
            seen[entry.name] = sig
            if self.seen.get(entry.name) == sig and now - st.st_mtime >= self.settle_s:
                ready.append(entry.name)
            else:
                waiting += 1
        self.seen = seen
        return sorted(ready, key=natural_key), waiting


def watch_jobs(directory: str, exit_when_empty: bool, scan_s: float = SCAN_S,
               settle_s: float = SETTLE_S) -> Iterator[Job]:
    """Jobs for the scripts dropped into ``to_run/`` (each file once: a script keeps
    its place there until it starts); ends, with ``exit_when_empty``, once a scan
    finds nothing new there."""
    directory = os.path.abspath(directory)
    prepare(directory)
    scanner = Scanner(directory, settle_s)
    running_dir = os.path.join(directory, "running")
    queued: Dict[str, Tuple[int, str]] = {}   # to_run name -> (inode, running/ name)
    index = 0
    while True:
        ready, waiting = scanner.scan()
        queued = {n: q for n, q in queued.items() if n in scanner.seen}   # started: gone
        new = 0
        for name in ready:
            inode = scanner.seen[name][0]
            if queued.get(name, (None,))[0] == inode:
                continue
            _check_name(scanner.to_run, name)
            taken = {q[1] for q in queued.values()}
            as_name = free_name(running_dir, name, taken)
            queued[name] = (inode, as_name)
            new += 1
            origin = os.path.join(scanner.to_run, name)
            runner = "exec" if os.access(origin, os.X_OK) else "exec bash"
            path = os.path.join(running_dir, as_name)
            yield Job(index=index, command=f"{runner} {shlex.quote(path)}",
                      name=as_name, where=origin)
            index += 1
        if exit_when_empty and not new and not waiting:
            return
        time.sleep(scan_s)


def free_name(folder: str, name: str, taken: Set[str]) -> str:
    """``name``, or ``name.N`` for the first N free in ``folder`` and not in ``taken``."""
    n = 0
    while True:
        candidate = name if n == 0 else f"{name}.{n}"
        if candidate not in taken and not os.path.lexists(os.path.join(folder, candidate)):
            return candidate
        n += 1


def is_watched(job: Job) -> bool:
    """A job of a watched directory's script (its origin is ``DIR/to_run/NAME``)."""
    return os.path.basename(os.path.dirname(job.where)) == "to_run" and job.name is not None


def start(job: Job) -> bool:
    """Move a watched job's script from ``to_run/`` to ``running/`` (under the job's
    name) as it starts. True when it is there to run (moved now, or by an earlier
    attempt); False when it left ``to_run/`` before it started."""
    running_dir = os.path.join(os.path.dirname(os.path.dirname(job.where)), "running")
    assert job.name is not None
    target = os.path.join(running_dir, job.name)
    if os.path.isfile(target) and not os.path.islink(target):
        return True                                # an attempt before a crash moved it
    try:
        os.link(job.where, target)
    except FileNotFoundError:
        return False
    except FileExistsError:                        # someone else's file: never replaced
        return False
    except OSError:                                # no hard links here: rename
        try:
            os.rename(job.where, target)
        except FileNotFoundError:
            return False
        return True
    try:
        os.unlink(job.where)
    except FileNotFoundError:                      # taken meanwhile: not ours to run
        os.unlink(target)
        return False
    return True


def left_running(directory: str, name: str) -> bool:
    """Is the script of the watched job ``name`` still in ``running/`` (its runner
    died while it ran)?"""
    return os.path.isfile(os.path.join(os.path.abspath(directory), "running", name))


def to_run_prefix(directory: str) -> str:
    """The origin every queued script of ``directory`` has (``DIR/to_run/``)."""
    return os.path.join(os.path.abspath(directory), "to_run", "")


def _check_name(folder: str, name: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.path.join(folder, name).encode("utf-8", "backslashreplace").decode("utf-8")
        raise InputError("the script's name is not valid UTF-8; rename it", shown) from None


def finish(directory: str, outcome: Outcome, out_path: str, err_path: str) -> Optional[str]:
    """Move a finished script from ``running/`` to ``complete/`` or ``fail/`` with its
    output and exit code beside it; returns where it went (None if not a watched job)."""
    directory = os.path.abspath(directory)
    script = os.path.join(directory, "running", outcome.name)
    if not os.path.isfile(script):
        return None
    dest = os.path.join(directory, "complete" if outcome.status is Status.SUCCEEDED else "fail")
    moved = move_no_clobber(script, dest, outcome.name)
    if moved is None:
        return None
    for src, suffix in ((out_path, ".stdout"), (err_path, ".stderr")):
        target = moved + suffix
        if os.path.islink(src) or os.path.islink(os.path.dirname(src)):
            continue            # a planted link in the output directory: never followed
        try:
            os.link(src, target)
        except FileExistsError:
            pass
        except OSError:
            try:
                shutil.copyfile(src, target)
            except OSError:
                pass
    code = outcome.exit_code if outcome.exit_code is not None else \
        (outcome.signal or outcome.status.value)
    with open(moved + ".exitcode", "w") as f:
        f.write(f"{code}\n")
    return moved
