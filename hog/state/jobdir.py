"""The job folder: the one module that knows its layout and writes it.

``<output_dir>/<prefix><N>/`` holds ``INFO`` (YAML), ``<prefix><N>.OUT`` and
``.ERR`` (the job's raw streams) and, once the job has ended, exactly one of
``SUCCESS`` or ``FAILURE``. Everything another process may read is written to a
temporary file and moved into place with ``os.replace`` (``files.atomic_write``).

INFO is emitted as YAML by hand: every string is a YAML double-quoted scalar in
plain ASCII, every other character escaped (``\\t``, ``\\x1b``, ``\\u00e9`` and, for a
character beyond the BMP such as an emoji, ``\\U0001f600``: never a UTF-16 surrogate
pair, which YAML reads back as two broken characters). That keeps the per-job cost to
a few microseconds, and ``yaml.safe_load`` reads every string back exactly.

The writer of an attempt holds an ``flock`` on its folder from the start until the
marker is written (``lock_folder``): a runner recovering the job after its runner died
waits for it, so it never judges (or queues again) a folder still being written.
"""
import fcntl
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Iterable, List, Optional

from hog.model import Outcome, Status
from hog.state.files import atomic_write, iso

STATE_DIR = ".hog"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
INFO = "INFO"
HOST = socket.gethostname()
# Files about the whole sweep, beside the job folders.
RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
REPORT_HTML = "report.html"
RUNNER_LOG = "runner.log"      # in STATE_DIR: a detached or hung-up runner's output


def _scalar(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return quoted(str(value))


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'[^\x20-\x7e]|["\\]')


def _escape(match: "re.Match[str]") -> str:
    char = match.group()
    code = ord(char)
    if char in _ESCAPES:
        return _ESCAPES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar of printable ASCII that reads back exactly
    (a lone surrogate, which no input should let through, is written as ``\\udXXX``)."""
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def render_info(fields: dict) -> str:
    """YAML text for a flat mapping (lists of strings become flow sequences)."""
    lines = []
    for key, value in fields.items():
        if isinstance(value, (list, tuple)):
            lines.append(f"{key}: [{', '.join(_scalar(v) for v in value)}]")
        else:
            lines.append(f"{key}: {_scalar(value)}")
    return "\n".join(lines) + "\n"


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

    def sweep_file(self, name: str) -> str:
        """A file about the whole sweep (``RESULTS_JSONL``, ``REPORT_HTML``, ...)."""
        return os.path.join(self.root, name)

    def prepare_root(self) -> None:
        """Create the output directory and its private state folder (0700). An existing
        state folder is left as it is: the store refuses it if others can write to it."""
        os.makedirs(self.root, exist_ok=True)
        try:
            os.mkdir(self.state_dir, 0o700)
        except FileExistsError:
            return
        os.chmod(self.state_dir, 0o700)     # whatever the umask

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


def info_fields(*, name: str, index: int, command: str, gpu_ids: Iterable[str], slot: int,
                pid: Optional[int], attempt: int, status: Status, exit_code: Optional[int] = None,
                signal: Optional[str] = None, started: Optional[float] = None,
                ended: Optional[float] = None) -> dict:
    return {
        "name": name,
        "index": index,
        "command": command,
        "gpus": list(gpu_ids),
        "slot": slot,
        "host": HOST,
        "pid": pid,
        "attempt": attempt,
        "status": status.value,
        "exit_code": exit_code,
        "signal": signal,
        "started": iso(started),
        "ended": iso(ended),
        "duration_s": None if ended is None or started is None else round(ended - started, 3),
    }


class JobFolder:
    """Writes one job attempt's folder: created at start, INFO, then the marker last."""

    def __init__(self, layout: Layout, index: int):
        self.layout = layout
        self.index = index
        self.path = layout.folder(index)
        self.out_path = layout.out_path(index)
        self.err_path = layout.err_path(index)
        self.info_path = layout.info_path(index)

    def create(self, attempt: int = 1) -> None:
        """Make the folder; from the second attempt on, first keep the files of the
        earlier one under names that carry its number (``job_3.OUT`` -> ``job_3.1.OUT``,
        ``INFO`` -> ``INFO.1``, ``FAILURE`` -> ``FAILURE.1``)."""
        os.makedirs(self.path, exist_ok=True)
        if attempt > 1:
            archive_attempt(self.layout, self.index)

    def verdict(self) -> Optional[str]:
        """'succeeded' if SUCCESS exists, 'failed' if FAILURE does, else None."""
        return folder_verdict(self.layout, self.index)

    def write_info(self, fields: dict) -> None:
        atomic_write(self.info_path, render_info(fields))

    def finish(self, fields: dict, outcome: Outcome) -> None:
        """Rewrite INFO with the outcome, then make exactly one marker, last: a hard link
        to the final INFO (one atomic step that creates no file: the handoff to the
        slot's next job waits for it), or a copy where links are not supported."""
        text = render_info(fields)
        atomic_write(self.info_path, text)
        marker = self.layout.marker_path(self.index, outcome.status is Status.SUCCEEDED)
        try:
            os.link(self.info_path, marker)
        except OSError:
            atomic_write(marker, text)


class FolderLock:
    """The writer's lock of a job folder, held while this object is (``release``, or
    dropping the last reference, lets go; so does the holder's death)."""

    def __init__(self, fd: int):
        self.fd: Optional[int] = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    __del__ = release


def lock_folder(path: str, wait_s: float) -> Optional[FolderLock]:
    """Take the writer's lock of a job folder, waiting up to ``wait_s`` s; None when
    the folder is missing or the lock is still held then."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return FolderLock(fd)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)
        except OSError:
            os.close(fd)
            return None


def read_info(layout: Layout, index: int) -> dict:
    """A job folder's INFO as a mapping ({} if missing or unreadable)."""
    import yaml  # yaml: only when an INFO file is read
    try:
        with open(layout.info_path(index)) as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def earlier_attempts(layout: Layout, index: int) -> List[dict]:
    """The INFO of each earlier attempt kept in a job folder (``INFO.1``, ``INFO.2``, ...),
    oldest first; unreadable ones are left out."""
    import yaml  # yaml: only when an INFO file is read
    try:
        names = os.listdir(layout.folder(index))
    except OSError:
        return []
    numbered = sorted(int(n[len(INFO) + 1:]) for n in names
                      if n.startswith(INFO + ".") and n[len(INFO) + 1:].isdigit())
    found = []
    for n in numbered:
        try:
            with open(os.path.join(layout.folder(index), f"{INFO}.{n}")) as f:
                data = yaml.safe_load(f)
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            found.append(data)
    return found


def folder_verdict(layout: Layout, index: int) -> Optional[str]:
    if os.path.exists(layout.marker_path(index, True)):
        return "succeeded"
    if os.path.exists(layout.marker_path(index, False)):
        return "failed"
    return None


def _attempt_of(info_path: str) -> Optional[int]:
    try:
        with open(info_path) as f:
            for line in f:
                if line.startswith("attempt:"):
                    return int(line.split(":", 1)[1])
    except (OSError, ValueError):
        return None
    return None


def archive_attempt(layout: Layout, index: int) -> None:
    """Rename the files of a folder's last attempt so the next one overwrites nothing."""
    folder = layout.folder(index)
    stem = layout.folder_name(index)
    current = [INFO, SUCCESS, FAILURE, f"{stem}.OUT", f"{stem}.ERR"]
    if not any(os.path.exists(os.path.join(folder, name)) for name in current):
        return
    n = _attempt_of(os.path.join(folder, INFO)) or 1
    while any(os.path.exists(os.path.join(folder, _numbered(name, stem, n))) for name in current):
        n += 1
    for name in current:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            os.replace(path, os.path.join(folder, _numbered(name, stem, n)))


def _numbered(name: str, stem: str, n: int) -> str:
    """``job_3.OUT`` -> ``job_3.2.OUT``; ``INFO`` -> ``INFO.2``."""
    if name.startswith(stem + "."):
        return f"{stem}.{n}{name[len(stem):]}"
    return f"{name}.{n}"


def now() -> float:
    return time.time()
