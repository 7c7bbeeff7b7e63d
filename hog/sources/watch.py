"""``hog watch DIR``: run scripts dropped into ``DIR/to_run/`` (fastgpu's model).

Each script is taken in natural sort order (``s2`` before ``s10``), moved to
``running/``, and when it ends moved to ``complete/`` or ``fail/`` with its
``.stdout``, ``.stderr`` and ``.exitcode`` beside it. Its job folder is kept in
the sweep's output directory as for any job.

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
from typing import Dict, Iterator, List, Optional, Tuple

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
        self.seen: Dict[str, Tuple[int, float]] = {}

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
            sig = (st.st_size, st.st_mtime)
            seen[entry.name] = sig
            if self.seen.get(entry.name) == sig and now - st.st_mtime >= self.settle_s:
                ready.append(entry.name)
            else:
                waiting += 1
        self.seen = seen
        return sorted(ready, key=natural_key), waiting


def watch_jobs(directory: str, exit_when_empty: bool, scan_s: float = SCAN_S,
               settle_s: float = SETTLE_S) -> Iterator[Job]:
    """Jobs for the scripts dropped into ``to_run/``; ends, with ``exit_when_empty``,
    once a scan finds nothing left there."""
    directory = os.path.abspath(directory)
    prepare(directory)
    scanner = Scanner(directory, settle_s)
    running_dir = os.path.join(directory, "running")
    index = 0
    while True:
        ready, waiting = scanner.scan()
        for name in ready:
            _check_name(scanner.to_run, name)
            path = move_no_clobber(os.path.join(scanner.to_run, name), running_dir, name)
            if path is None:
                continue
            runner = "exec" if os.access(path, os.X_OK) else "exec bash"
            yield Job(index=index, command=f"{runner} {shlex.quote(path)}",
                      name=os.path.basename(path), where=f"{directory}/to_run/{name}")
            index += 1
        if exit_when_empty and not ready and not waiting:
            return
        time.sleep(scan_s)


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
