"""Which hog runners of this user run jobs on this machine (``--wait-for-running``).

Each runner keeps a small file ``<pid>`` in a per-user folder (0700) saying whether
it runs jobs, and who it is: its GPUs, its output directory and its working
directory (one JSON line). The file is rewritten atomically only when that changes
(between no job and some, or new GPUs), and removed when the runner ends. A file
whose pid is gone is ignored and cleaned up. A runner of an older hog wrote
``<start> <busy>`` only: it counts, its GPUs and directories unknown.

``busy_neighbour`` names the runner to wait for: any busy one, or with ``same_gpus``
(``--wait-for-same-gpus``) only one sharing a GPU id with this runner (one of unknown
GPUs counts).
"""
import json
import os
import tempfile
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

from hog.proc import proc_start_time
from hog.state.files import atomic_write


def folder() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = os.path.join(base, f"hog-{os.geteuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


@dataclass(frozen=True)
class Neighbour:
    """Another runner of this user that runs jobs."""
    pid: int
    gpus: Optional[Tuple[str, ...]]     # None: unknown (an older hog)
    output_dir: str = ""
    cwd: str = ""

    def describe(self) -> str:
        if self.gpus is None:
            return f"hog runner pid {self.pid}"
        gpus = ",".join(dict.fromkeys(self.gpus)) or "none"
        return f"hog runner pid {self.pid} (GPUs {gpus}, output {self.output_dir}, " \
               f"started in {self.cwd})"


def _parse(pid: int, text: str) -> Optional[Tuple[str, bool, Neighbour]]:
    """(start time, busy, the runner) from a registry file, None if unreadable."""
    try:
        data = json.loads(text)
    except ValueError:
        parts = text.split()             # an older hog: "<start> <busy>"
        if len(parts) != 2:
            return None
        return parts[0], parts[1] == "1", Neighbour(pid, None)
    if not isinstance(data, dict):
        return None
    try:
        return (str(data["start"]), bool(data["busy"]),
                Neighbour(pid, tuple(str(g) for g in data.get("gpus", ())),
                          str(data.get("output_dir", "")), str(data.get("cwd", ""))))
    except (KeyError, TypeError):
        return None


class Registry:
    def __init__(self, path: Optional[str] = None):
        self.path = path or folder()
        self.me = os.path.join(self.path, str(os.getpid()))
        self.busy: Optional[bool] = None
        self.gpus: Tuple[str, ...] = ()
        self.output_dir = ""
        self.cwd = os.getcwd()
        self.waiting_for: Optional[Neighbour] = None   # (kept by the engine)

    def describe(self, gpus: Iterable[str], output_dir: str) -> None:
        """Who this runner is, for the others' messages (written on the next update)."""
        self.gpus = tuple(gpus)
        self.output_dir = os.path.abspath(output_dir)
        self.busy = None

    def update(self, running: int) -> None:
        busy = running > 0
        if busy != self.busy:
            text = json.dumps({"start": proc_start_time(os.getpid()), "busy": int(busy),
                               "gpus": list(self.gpus), "output_dir": self.output_dir,
                               "cwd": self.cwd})
            try:
                atomic_write(self.me, text + "\n")
            except OSError:     # its folder refuses writes (full): tried on the next update
                return
            self.busy = busy

    def busy_neighbour(self, same_gpus: bool = False) -> Optional[Neighbour]:
        """Another runner of this user that runs jobs (with ``same_gpus``: on one of this
        runner's GPUs), the lowest pid first; None if there is none."""
        mine = set(self.gpus)
        for name in sorted(os.listdir(self.path), key=lambda n: (len(n), n)):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            path = os.path.join(self.path, name)
            try:
                with open(path) as f:
                    found = _parse(int(name), f.read())
            except OSError:
                continue
            if found is None:
                continue
            start, busy, other = found
            if proc_start_time(int(name)) != start:
                try:
                    os.unlink(path)         # that runner is gone
                except OSError:
                    pass
                continue
            if busy and (not same_gpus or other.gpus is None or mine & set(other.gpus)):
                return other
        return None

    def others_running(self) -> bool:
        return self.busy_neighbour() is not None

    def close(self) -> None:
        try:
            os.unlink(self.me)
        except OSError:
            pass
