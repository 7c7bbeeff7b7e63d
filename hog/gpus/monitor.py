"""Keeps new jobs off GPUs that other people's processes use.

``--min_free_memory SIZE``: a GPU is usable while its memory not taken by others
is at least SIZE. ``--exclusive``: a GPU is usable only while no process hog did not
start runs on it. hog's own jobs never count as "others" (a process belongs to hog
when its session is one of hog's jobs, which each run in their own session), so a
job that has just started and not yet allocated can never make hog double-book a
GPU, and a job's own allocations never lock its GPU against later jobs of the
sweep. ``nvidia-smi`` is asked every ``CHECK_S`` seconds in a background thread;
the runner applies the latest answer on its next tick.
"""
import threading
from typing import Callable, Dict, FrozenSet, Iterable, Optional, Set

from hog.gpus.discovery import ComputeApp, Gpu, query_compute_apps, query_gpus

CHECK_S = 2.0
MIB = 2 ** 20


def session_of(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def unavailable_gpus(gpus: Iterable[Gpu], apps: Iterable[ComputeApp], ours: FrozenSet[int],
                     min_free: Optional[float], exclusive: bool,
                     session: Callable[[int], Optional[int]] = session_of) -> Set[str]:
    """GPU ids (index and uuid both listed) others use beyond what is allowed."""
    by_uuid: Dict[str, Gpu] = {g.uuid: g for g in gpus}
    others_mib: Dict[str, int] = {g.uuid: 0 for g in by_uuid.values()}
    ours_mib: Dict[str, int] = {g.uuid: 0 for g in by_uuid.values()}
    foreign: Set[str] = set()
    for app in apps:
        if app.gpu_uuid not in by_uuid:
            continue
        mine = app.pid in ours or session(app.pid) in ours
        bucket = ours_mib if mine else others_mib
        bucket[app.gpu_uuid] += app.used_mib or 0
        if not mine:
            foreign.add(app.gpu_uuid)
    out: Set[str] = set()
    for uuid, g in by_uuid.items():
        busy = exclusive and uuid in foreign
        if min_free is not None and g.memory_total_mib is not None:
            used = g.memory_used_mib if g.memory_used_mib is not None else others_mib[uuid]
            taken_by_others = max(others_mib[uuid], used - ours_mib[uuid])
            if (g.memory_total_mib - taken_by_others) * MIB < min_free:
                busy = True
        if busy:
            out.update((g.index, g.uuid))
    return out


class GpuMonitor:
    """Asks nvidia-smi in a thread; ``unavailable`` holds the latest verdict."""

    def __init__(self, min_free: Optional[float], exclusive: bool, interval: float = CHECK_S):
        self.min_free = min_free
        self.exclusive = exclusive
        self.interval = interval
        self.ours: FrozenSet[int] = frozenset()
        self.unavailable: FrozenSet[str] = frozenset()
        self.error = ""
        self.checks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hog-gpu-monitor", daemon=True)

    def check_once(self) -> None:
        gpus = query_gpus()
        apps = query_compute_apps() if gpus is not None else None
        if gpus is None or apps is None:
            self.error = "nvidia-smi did not answer"
            return
        self.error = ""
        self.unavailable = frozenset(unavailable_gpus(gpus, apps, self.ours, self.min_free,
                                                      self.exclusive))
        self.checks += 1

    def start(self) -> None:
        self.check_once()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.check_once()
