"""The job folder: the one module that knows its layout and writes it.

``<output_dir>/<prefix><N>/`` holds ``INFO`` (YAML), ``<prefix><N>.OUT`` and
``.ERR`` (the job's raw streams) and, once the job has ended, exactly one of
``SUCCESS`` or ``FAILURE`` (the marker: a hard link to the final INFO, made last).
Everything another process may read is written to a temporary file and moved into
place with ``os.replace`` (``files.atomic_write``). A folder is only ever added to:
a new attempt first moves the files of the one before to numbered names, marker
first, so there is never more than one marker and nothing hog wrote is overwritten.
Every file and folder inside the output directory is made and opened relative to a
directory file descriptor, with ``O_NOFOLLOW`` (and ``O_EXCL`` for new files): a
symbolic link planted there is refused, never followed.

What INFO holds and how it is written is ``state.info``'s; reading folders back (INFO,
earlier attempts, whether an attempt began, the marker's verdict) is
``state.jobread``'s; the folder's writer lock
(held from the start of an attempt until its marker) is ``state.folderlock``'s; the
flags of cancelled handed jobs (``Layout.withdrawn_flag``) are ``state.withdrawn``'s.
"""
import os
import stat
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

from hog.model import Outcome, Status
from hog.state.files import UnsafePath as UnsafePath  # raised here; backends import it here
from hog.state.files import (
    atomic_write,
    check_location,
    create_file,
    open_append,
    open_dir,
    symlink_refused,
)
from hog.state.folderlock import FolderLock, flock_fd
from hog.state.info import render_info
from hog.state.withdrawn import withdrawn_flag

STATE_DIR = ".hog"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
INFO = "INFO"
# Files about the whole sweep, beside the job folders.
RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
RESULTS_MARK = "results.mark"  # in STATE_DIR: what the last results write can keep
RESULTS_SPOOL = "results.spool"  # in STATE_DIR: <it>.<pid>.jsonl/.csv, a runner's in the making
REPORT_HTML = "report.html"
RUNNER_LOG = "runner.log"      # in STATE_DIR: a detached or hung-up runner's output
BOOT_MARK = "boot"             # in STATE_DIR: how the sweep resumes after a reboot (hog.boot)
# The output directory itself is the user's to name (it may be a link they made);
# everything inside it is opened relative to it, without following links.
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(frozen=True)
class Layout:
    """Paths of an output directory's job folders."""

    root: str
    prefix: str = "job_"

    def folder_name(self, index: int) -> str:
        return f"{self.prefix}{index}"

    def folder(self, index: int) -> str:
        return os.path.join(self.root, self.folder_name(index))

    def out_path(self, index: int) -> str:
        return os.path.join(self.folder(index), f"{self.folder_name(index)}.OUT")

    def err_path(self, index: int) -> str:
        return os.path.join(self.folder(index), f"{self.folder_name(index)}.ERR")

    def info_path(self, index: int) -> str:
        return os.path.join(self.folder(index), INFO)

    def marker_path(self, index: int, success: bool) -> str:
        return os.path.join(self.folder(index), SUCCESS if success else FAILURE)

    @property
    def state_dir(self) -> str:
        return os.path.join(self.root, STATE_DIR)

    def withdrawn_flag(self, index: int, attempt: int) -> str:
        """Its existence says: attempt ``attempt`` of job ``index``, handed to a slot as
        its next job, was cancelled (``hog kill``); the slot must not start it."""
        return withdrawn_flag(self.state_dir, index, attempt)

    def sweep_file(self, name: str) -> str:
        """A file about the whole sweep (``RESULTS_JSONL``, ``REPORT_HTML``, ...)."""
        return os.path.join(self.root, name)

    def prepare_root(self) -> None:
        """Create the output directory and its private state folder (0700). An output
        directory another user could swap (``check_location``), or a state folder that
        is a symbolic link, is refused (``UnsafePath``); an existing state folder is
        otherwise left as it is: the store refuses it if others can write to it."""
        check_location(self.root)
        os.makedirs(self.root, exist_ok=True)
        root = os.open(self.root, _ROOT_FLAGS)
        try:
            try:
                os.mkdir(STATE_DIR, 0o700, dir_fd=root)
                made = True
            except FileExistsError:
                made = False
            fd = open_dir(self.state_dir, root)
            try:
                if made:
                    os.fchmod(fd, 0o700)     # whatever the umask
            finally:
                os.close(fd)
        finally:
            os.close(root)

    def existing_job_folders(self, limit: int = 3) -> List[str]:
        """Up to ``limit`` names of job folders already in the output directory."""
        found = []
        with os.scandir(self.root) as it:
            for entry in it:
                name = entry.name
                if name.startswith(self.prefix) and name[len(self.prefix):].isdigit() \
                        and entry.is_dir():
                    found.append(name)
                    if len(found) >= limit:
                        break
        return sorted(found)


class JobFolder:
    """One job's folder, open by a directory file descriptor (``fd``): every file in it
    is made, replaced and linked relative to ``fd``, never through a symbolic link.

    ``open_new`` is a new attempt's: the folder is made, or what an earlier attempt
    left is moved aside first (the marker before anything else, so the folder never
    holds two). ``open_existing`` is the folder as it is (an attempt whose writer is
    gone). ``finish`` rewrites INFO and then makes the marker, last. A folder, or one
    of hog's files in it, that is a symbolic link or another user's is refused
    (``UnsafePath``) before anything is written."""

    def __init__(self, layout: Layout, index: int):
        self.layout = layout
        self.index = index
        self.stem = layout.folder_name(index)
        self.path = layout.folder(index)
        self.out_path = layout.out_path(index)
        self.err_path = layout.err_path(index)
        self.info_path = layout.info_path(index)
        self.fd: Optional[int] = None
        self.staged: Optional[str] = None   # made ahead under .hog/next (state.staging)

    # ------------------------------------------------------------ opening
    def open_new(self, lock_wait_s: float) -> Optional["FolderLock"]:
        """Open the folder for a new attempt: made now, or with the files of the attempt
        before (``job_3.OUT`` -> ``job_3.1.OUT``, ``INFO`` -> ``INFO.1``, ``FAILURE`` ->
        ``FAILURE.1``) moved aside, so the new one overwrites nothing. The writer's lock
        (``lock``) is taken first and returned."""
        made = self._open()
        lock = self.lock(lock_wait_s)
        if not made:
            self.move_aside()
        return lock

    def open_existing(self, lock_wait_s: float) -> Optional["FolderLock"]:
        """Open the folder as it is, and take the writer's lock (returned)."""
        self._open()
        return self.lock(lock_wait_s)

    def lock(self, wait_s: float) -> Optional["FolderLock"]:
        """The folder's writer lock (``lock_folder``), taken through the open folder (no
        name looked up again), waiting up to ``wait_s`` s; None if still held then."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.fd)
        return flock_fd(fd, wait_s)

    def _open(self) -> bool:
        """Open (and make if missing) the folder; True when it was made now."""
        root = os.open(self.layout.root, _ROOT_FLAGS)   # (a vanished one is not made again)
        try:
            try:
                os.mkdir(self.stem, 0o777, dir_fd=root)
                made = True
            except FileExistsError:
                made = False
            self.fd = open_dir(self.path, root, owned=True)
        finally:
            os.close(root)
        return made

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _names(self) -> List[str]:
        """hog's names for the current attempt's files, the marker first."""
        return [SUCCESS, FAILURE, INFO, f"{self.stem}.OUT", f"{self.stem}.ERR"]

    def _present(self, name: str) -> bool:
        """``name`` exists in the folder; a symbolic link there is refused."""
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(st.st_mode):
            raise symlink_refused(os.path.join(self.path, name))
        return True

    def move_aside(self) -> None:
        """Rename the files of the folder's last attempt to names that carry its number
        (from INFO's attempt on, the first number free for each of them), the marker
        first; a move that a crash cut short is completed under the same number."""
        present = [name for name in self._names() if self._present(name)]
        if not present:
            return
        n = self._info_fields().get("attempt")
        n = n if isinstance(n, int) and n > 0 else 1
        while any(_lexists(_numbered(name, self.stem, n), self.fd) for name in present):
            n += 1
        for name in present:
            os.rename(name, _numbered(name, self.stem, n), src_dir_fd=self.fd,
                      dst_dir_fd=self.fd)

    def holds_attempt(self, attempt: int, pid: Optional[int]) -> bool:
        """Whether the folder's current files are those of ``attempt`` (of process ``pid``,
        where known), still unended: no marker, and INFO (if any yet) says so."""
        if self._present(SUCCESS) or self._present(FAILURE):
            return False
        if not self._present(INFO):
            return True
        fields = self._info_fields()
        return fields.get("attempt") == attempt and fields.get("status") == '"running"' \
            and (pid is None or fields.get("pid") in (None, pid))

    def ended_attempt(self, attempt: int) -> bool:
        """Whether the folder's current files are ``attempt``'s, already ended (a marker,
        and INFO of that attempt): another writer ended it first."""
        if not (self._present(SUCCESS) or self._present(FAILURE)):
            return False
        return self._info_fields().get("attempt") == attempt

    def _info_fields(self) -> dict:
        """The top-level scalars of INFO, read without YAML (ints as ints, the rest as
        written)."""
        found: dict = {}
        try:
            fd = os.open(INFO, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return found
        with open(fd, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    value = value.strip()
                    found[key] = int(value) if value.isdigit() else \
                        None if value == "null" else value
        return found

    # ------------------------------------------------------------ writing
    def streams(self) -> Tuple[int, int]:
        """``.OUT`` and ``.ERR`` made new for this attempt (never an existing file), open
        for writing."""
        out = create_file(self.out_path, self.fd)
        try:
            return out, create_file(self.err_path, self.fd)
        except BaseException:       # (the disk is full: tried again from the start)
            os.close(out)
            os.unlink(os.path.basename(self.out_path), dir_fd=self.fd)
            raise

    def append(self, path: str, data: bytes) -> None:
        """Append to one of the folder's files (made if missing), never through a link."""
        fd = open_append(path, self.fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def write_info(self, fields: dict) -> None:
        atomic_write(self.info_path, render_info(fields), self.fd)

    def finish(self, fields: dict, outcome: Outcome) -> None:
        """Rewrite INFO with the outcome, then make the one marker, last: a hard link to
        the final INFO (one atomic step that creates no file: the handoff to the slot's
        next job waits for it), or a new file where links are not supported. A folder
        that already holds a marker (the attempt was ended elsewhere) is left as it is:
        never two markers, never one overwritten."""
        if _lexists(SUCCESS, self.fd) or _lexists(FAILURE, self.fd):
            return
        text = render_info(fields)
        atomic_write(self.info_path, text, self.fd)
        marker = SUCCESS if outcome.status is Status.SUCCEEDED else FAILURE
        try:
            os.link(INFO, marker, src_dir_fd=self.fd, dst_dir_fd=self.fd,
                    follow_symlinks=False)
        except FileExistsError:
            return
        except OSError:
            try:
                fd = create_file(os.path.join(self.path, marker), self.fd)
            except FileExistsError:
                return
            try:
                os.write(fd, text.encode("utf-8", "surrogateescape"))
            finally:
                os.close(fd)


def _lexists(name: str, dir_fd: Optional[int]) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _numbered(name: str, stem: str, n: int) -> str:
    """``job_3.OUT`` -> ``job_3.2.OUT``; ``INFO`` -> ``INFO.2``."""
    if name.startswith(stem + "."):
        return f"{stem}.{n}{name[len(stem):]}"
    return f"{name}.{n}"


def now() -> float:
    return time.time()
