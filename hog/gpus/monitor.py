"""The GPU monitor: one thread that looks at every GPU every ``CHECK_S`` seconds
(through NVML where ``nvidia-ml-py`` is installed, ``nvidia-smi`` otherwise) for three
uses; the runner applies the latest answer on its next tick.

- ``--min_free_memory SIZE``: a GPU is usable while its memory not taken by others
  is at least SIZE. ``--exclusive``: a GPU is usable only while no process hog did not
  start runs on it (``unavailable``).
- ``memory=`` packing: what each GPU has free of processes hog did not start
  (``foreign``: memory others hold, subtracted from the GPU's capacity).
- Usage per attempt: each job's peak GPU memory and the mean utilisation of the GPUs
  it held or ran on (``track`` at its start, ``finish`` at its end). A GPU process
  belongs to a job when its session is the job's (each job runs in its own session)
  or one of its ancestors' is (a process that left the session with ``setsid`` but
  still has a job process above it). Utilisation is per GPU: jobs sharing a GPU each
  get the GPU's figure.

hog's own jobs never count as "others", so a job that has just started and not yet
allocated can never make hog double-book a GPU, and a job's own allocations never
lock its GPU against later jobs of the sweep. Each look costs two ``nvidia-smi`` runs
(or a few NVML calls); ``cpu_s`` adds up the thread's own CPU time.
"""
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from hog.gpus.discovery import ComputeApp, Gpu
from hog.gpus.nvml import NvmlReader
from hog.gpus.smi import Sample, SmiReader

CHECK_S = 2.0
MIB = 2 ** 20


def session_of(pid: int) -> Optional[int]:
    ids = _stat_ids(pid)
    return None if ids is None else ids[1]


def _stat_ids(pid: int) -> Optional[Tuple[int, int]]:
    """(parent pid, session id) of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2:].split()
        return int(fields[1]), int(fields[3])
    except (OSError, ValueError, IndexError):
        return None


def job_of(pid: int, jobs: Iterable[int], depth: int = 32) -> Optional[int]:
    """The job (its session id, = its leader's pid) process ``pid`` belongs to: its own
    session or an ancestor's is the job's; None for a process hog did not start."""
    jobs = set(jobs)
    seen = 0
    while pid > 1 and seen < depth:
        if pid in jobs:
            return pid
        ids = _stat_ids(pid)
        if ids is None:
            return None
        if ids[1] in jobs:
            return ids[1]
        pid, seen = ids[0], seen + 1
    return None


def foreign_memory(gpus: Iterable[Gpu], apps: Iterable[ComputeApp], ours: FrozenSet[int],
                   session: Callable[[int], Optional[int]] = session_of) -> Dict[str, float]:
    """Bytes of each GPU's memory (by index and by uuid) held by processes hog did not
    start: the processes listed as others', or, where more is in use than the listed
    processes explain (other containers, contexts not listed), what hog's do not."""
    by_uuid: Dict[str, Gpu] = {g.uuid: g for g in gpus}
    others: Dict[str, int] = {u: 0 for u in by_uuid}
    mine: Dict[str, int] = {u: 0 for u in by_uuid}
    for app in apps:
        if app.gpu_uuid in by_uuid:
            bucket = mine if app.pid in ours or session(app.pid) in ours else others
            bucket[app.gpu_uuid] += app.used_mib or 0
    out: Dict[str, float] = {}
    for uuid, g in by_uuid.items():
        taken = others[uuid]
        if g.memory_used_mib is not None:
            taken = max(taken, g.memory_used_mib - mine[uuid])
        out[g.index] = out[uuid] = float(taken * MIB)
    return out


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


@dataclass
class _Track:
    """What one running job was seen using so far."""

    gpus: Tuple[str, ...]               # the GPU ids it was given
    peak_mib: int = 0
    util_sum: float = 0.0
    util_n: int = 0
    samples: int = 0
    on: Set[str] = field(default_factory=set)   # uuids its processes were seen on


def open_reader():
    """NVML where it is installed and starts, else nvidia-smi (None if it is missing)."""
    reader = NvmlReader.open()
    if reader is not None:
        return reader
    return SmiReader() if shutil.which("nvidia-smi") else None


class GpuMonitor:
    """Looks at the GPUs in a thread; ``unavailable``, ``foreign`` and the tracked jobs'
    usage hold the latest verdicts. ``reader`` None: nothing can be asked (``error``)."""

    def __init__(self, min_free: Optional[float], exclusive: bool, interval: float = CHECK_S,
                 reader=None, open_now: bool = True):
        self.min_free = min_free
        self.exclusive = exclusive
        self.interval = interval
        # open_now False: NVML (its start can take a while) or nvidia-smi is looked for
        # in the thread, which looks at once (``start(look_first=False)``)
        self.reader = open_reader() if reader is None and open_now else reader
        self.ours: FrozenSet[int] = frozenset()
        self.unavailable: FrozenSet[str] = frozenset()
        self.foreign: Dict[str, float] = {}
        self.gpus: List[Gpu] = []       # as last seen (memory totals for memory= jobs)
        self.error = "" if self.reader is not None or not open_now \
            else "nvidia-smi did not answer"
        self.looked = threading.Event()  # set once the first look is done, answered or not
        self.gave_up = False            # the first look in the thread found nothing to ask
        self.checks = 0
        self.cpu_s = 0.0                # this thread's CPU time in its looks
        self.history: List[Tuple[float, Dict[str, Tuple[int, Optional[float]]]]] = []
        self._jobs: Dict[int, _Track] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hog-gpu-monitor", daemon=True)

    # ------------------------------------------------------------ jobs
    def track(self, pid: int, gpu_ids: Iterable[str]) -> None:
        """A job started (its leader ``pid`` = its session) on ``gpu_ids``."""
        with self._lock:
            self._jobs[pid] = _Track(tuple(gpu_ids))

    def finish(self, pid: int) -> Tuple[Optional[int], Optional[float]]:
        """The job ended: (its peak GPU memory in bytes, the mean utilisation in percent
        of the GPUs it held or ran on); None where no look fell within its run."""
        with self._lock:
            t = self._jobs.pop(pid, None)
        if t is None or not t.samples:
            return None, None
        return t.peak_mib * MIB, None if not t.util_n else round(t.util_sum / t.util_n, 1)

    # ------------------------------------------------------------ looks
    def check_once(self) -> None:
        began = time.thread_time()
        sample = None if self.reader is None else self.reader.read()
        if sample is None:
            self.error = f"{self.reader.name if self.reader else 'nvidia-smi'} did not answer"
        else:
            self.error = ""
            with self._lock:
                ours = self.ours | frozenset(self._jobs)
            self.unavailable = frozenset(unavailable_gpus(sample.gpus, sample.apps, ours,
                                                          self.min_free, self.exclusive))
            self.foreign = foreign_memory(sample.gpus, sample.apps, ours)
            self.gpus = list(sample.gpus)
            self._attribute(sample)
            self.history.append((time.time(), {
                g.index: ((g.memory_used_mib or 0) * MIB, sample.util.get(g.uuid))
                for g in sample.gpus}))
            self.checks += 1
        self.cpu_s += time.thread_time() - began

    def _attribute(self, sample: Sample) -> None:
        with self._lock:
            jobs = dict(self._jobs)
        if not jobs:
            return
        mib: Dict[int, int] = {}
        on: Dict[int, Set[str]] = {}
        for app in sample.apps:
            job = job_of(app.pid, jobs)
            if job is not None:
                mib[job] = mib.get(job, 0) + (app.used_mib or 0)
                on.setdefault(job, set()).add(app.gpu_uuid)
        uuid_of = {k: g.uuid for g in sample.gpus for k in (g.index, g.uuid)}
        with self._lock:
            for pid, t in self._jobs.items():
                if pid not in jobs:
                    continue
                t.samples += 1
                t.peak_mib = max(t.peak_mib, mib.get(pid, 0))
                t.on |= on.get(pid, set())
                held = {uuid_of[g] for g in t.gpus if g in uuid_of} | on.get(pid, set())
                utils = [u for u in (sample.util.get(g) for g in held) if u is not None]
                if utils:
                    t.util_sum += sum(utils) / len(utils)
                    t.util_n += 1

    def take_history(self) -> List[Tuple[float, Dict[str, Tuple[int, Optional[float]]]]]:
        """The looks since the last call: (time, {GPU index: (bytes used, util %)})."""
        out, self.history = self.history, []
        return out

    def start(self, look_first: bool = True) -> None:
        """Look every ``interval`` seconds; the first look now (``look_first``: before
        this returns, its verdicts needed before any job starts) or at once in the
        thread."""
        if look_first:
            self.check_once()
            self.looked.set()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        if not self.looked.is_set():
            if self.reader is None:
                self.reader = open_reader()
            self.check_once()
            self.looked.set()
            if self.error:          # nothing answers: no GPU figures, no cost
                self.gave_up = True
                return
        while not self._stop.wait(self.interval):
            self.check_once()
