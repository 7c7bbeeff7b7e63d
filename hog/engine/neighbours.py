"""Which hog runners of this user run jobs on this machine (``--wait_for_running``).

Each runner keeps a small file ``<pid>`` in a per-user folder (0700) saying how
many jobs it runs; it is rewritten atomically only when that number changes
between zero and non-zero, and removed when the runner ends. A file whose pid is
gone is ignored and cleaned up.
"""
import os
import tempfile
from typing import Optional

from hog.proc import proc_start_time
from hog.state.files import atomic_write


def folder() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = os.path.join(base, f"hog-{os.geteuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


class Registry:
    def __init__(self, path: Optional[str] = None):
        self.path = path or folder()
        self.me = os.path.join(self.path, str(os.getpid()))
        self.busy: Optional[bool] = None

    def update(self, running: int) -> None:
        busy = running > 0
        if busy != self.busy:
            try:
                atomic_write(self.me, f"{proc_start_time(os.getpid())} {int(busy)}\n")
            except OSError:     # its folder refuses writes (full): tried on the next update
                return
            self.busy = busy

    def others_running(self) -> bool:
        for name in os.listdir(self.path):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            path = os.path.join(self.path, name)
            try:
                with open(path) as f:
                    start, busy = f.read().split()
            except (OSError, ValueError):
                continue
            if proc_start_time(int(name)) != start:
                try:
                    os.unlink(path)         # that runner is gone
                except OSError:
                    pass
                continue
            if busy == "1":
                return True
        return False

    def close(self) -> None:
        try:
            os.unlink(self.me)
        except OSError:
            pass
