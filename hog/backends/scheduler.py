"""Resource-aware scheduling: which queued jobs start now, and where. Pure: no I/O,
no processes; time comes from an injected clock so every rule can be stepped.

Capacities: GPU slots (a GPU id listed twice = two slots on it), optionally a
memory total per GPU, named runner-wide resources (``foo=12``) and a pool of CPU
slots for jobs that ask for ``gpus: 0``.

Order: jobs are offered in queue order (priority, then submission). Each one that
fits starts. The first one that does not fit (the *head*) gets a reservation:
the GPUs it will use as soon as they free up. A later job may still start
(backfill) if it does not touch the head's reservation, or if it is expected to
end before the head could start anyway. Expected durations come from the jobs
that have ended so far (their mean), and a running job's remaining time is taken
as the larger of (mean - elapsed) and elapsed; while nothing has ended yet,
nothing is known, and backfill is allowed so no GPU idles. This keeps GPUs busy
(Guild's 4 s / 2 s mix ends in 6 s, not Dask's 8 s) and bounds a multi-GPU job's
wait once it is at the head to about one job duration (Ray lets it starve).
"""
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, DefaultDict, Dict, Iterable, List, Optional, Sequence, Tuple

from hog.backends.fit import gpu_order, job_memory, named_resources, why_never_fits
from hog.model import Job, Slot
from hog.placement import Placement, Verdicts


@dataclass
class _Alloc:
    placement: Placement
    job: Job
    started: float
    memory: float
    alone: bool = False     # placed on GPUs no other job may share (an OOM rerun)


@dataclass
class Capacity:
    slots: Sequence[Slot]
    resources: Dict[str, float] = field(default_factory=dict)
    gpu_memory: Dict[str, float] = field(default_factory=dict)   # bytes per GPU id
    cpu_slots: int = 1


class Scheduler:
    def __init__(self, capacity: Capacity, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.slots: Dict[int, Slot] = {s.index: s for s in capacity.slots}
        self.free = set(self.slots)
        self.cpu_only = not self.slots      # --gpus none: a GPU job never fits here
        self.retiring: set = set()
        self.resources = dict(capacity.resources)
        self.used: DefaultDict[str, float] = defaultdict(float)
        self.gpu_memory = dict(capacity.gpu_memory)
        self.mem_used: DefaultDict[str, float] = defaultdict(float)
        self.foreign: Dict[str, float] = {}   # bytes per GPU id held by others' processes
        self.cpu_total = capacity.cpu_slots
        # CPU slots are -1, -2, ... (shown as cpu0, cpu1, ...); the list's end is taken first
        self.cpu_free = list(range(-capacity.cpu_slots, 0))
        self.load: Counter = Counter()
        self.running: Dict[int, _Alloc] = {}
        self.unavailable: set = set()      # GPU ids others are using (free-memory checks)
        self.excluded: set = set()         # GPU ids in quarantine (engine/health.py)
        self.exclusive: set = set()        # jobs whose next placement must be alone
        self.alone: Counter = Counter()    # GPU id -> running jobs placed there alone
        self.durations = 0.0
        self.ended = 0
        self._gpus: Optional[List[str]] = None
        self._verdicts = Verdicts(self._never_fits)

    # --------------------------------------------------------- capacity
    def gpus(self) -> List[str]:
        if self._gpus is None:
            self._gpus = sorted(set(s.gpu for s in self.slots.values()), key=gpu_order)
        return self._gpus

    def _capacity_changed(self) -> None:
        self._gpus = None
        self._verdicts.forget()

    def add_slot(self, gpu: str) -> int:
        self._capacity_changed()
        self.cpu_only = False
        index = max(self.slots, default=-1) + 1
        self.slots[index] = Slot(index, gpu)
        self.free.add(index)
        return index

    def retire_slot(self, index: int) -> bool:
        """Take a slot out of use: True if it went now, False if when its job ends."""
        if index in self.free:
            self.free.discard(index)
            del self.slots[index]
            self._capacity_changed()
            return True
        self.retiring.add(index)
        return False

    def resize(self, wanted: Sequence[str]) -> Tuple[List[int], List[int]]:
        """Make the slots ``wanted`` (GPU ids, one per slot; ``hog gpus``): slots on GPUs
        still wanted stay, the others retire. Returns the slots to remove now and the
        slots added; the rest of the retiring ones go when their job ends (``release``)."""
        current = {i: s.gpu for i, s in self.slots.items() if i not in self.retiring}
        keep: Dict[int, str] = {}
        todo = list(wanted)
        for i, gpu in sorted(current.items()):
            if gpu in todo:
                todo.remove(gpu)
                keep[i] = gpu
        gone = [i for i in set(current) - set(keep) if self.retire_slot(i)]
        return gone, [self.add_slot(gpu) for gpu in todo]

    def owns_slot(self, slot: int) -> bool:
        """Is ``slot`` one of the GPU slots (one being retired included)?"""
        return slot in self.slots

    def slot_gpus(self) -> List[str]:
        return [s.gpu for i, s in sorted(self.slots.items()) if i not in self.retiring]

    def set_unavailable(self, gpu_ids: Iterable[str]) -> bool:
        """Others use ``gpu_ids``; True if that changed the set."""
        unavailable = set(gpu_ids)
        changed = unavailable != self.unavailable
        self.unavailable = unavailable
        return changed

    def set_excluded(self, gpu_ids: Iterable[str]) -> bool:
        """Place nothing on ``gpu_ids`` (quarantined); True if that changed the set."""
        excluded = set(gpu_ids)
        changed = excluded != self.excluded
        self.excluded = excluded
        if changed:
            self._capacity_changed()
        return changed

    def want_alone(self, job_id: int) -> None:
        """Place ``job_id``'s next attempt only on GPUs no other job of this runner uses,
        and start nothing beside it there while it runs."""
        self.exclusive.add(job_id)

    @property
    def idle(self) -> bool:
        return not self.running

    def has_room(self) -> bool:
        return bool(self.free) or bool(self.cpu_free)

    def room(self) -> int:
        """How many GPU slots are free."""
        return len(self.free)

    def only_cpu_jobs_fit(self) -> bool:
        return not self.free and not self.cpu_only

    def started(self, job_id: int) -> None:
        """A placed job's process started: nothing changes here (a job holds its slots
        from its placement on)."""

    # ------------------------------------------------------------ rules
    def never_fits(self, job: Job) -> Optional[str]:
        """Why ``job`` can never run on this runner, or None (remembered per job until
        the capacity changes)."""
        return self._verdicts(job)

    def set_gpu_memory(self, gpu: str, size: float) -> None:
        self.gpu_memory[gpu] = size
        self._capacity_changed()

    def set_foreign_memory(self, held: Dict[str, float]) -> bool:
        """Processes hog did not start hold ``held`` bytes per GPU id (the monitor's latest
        look): ``memory=`` jobs fit in what is left. A job that fits the GPU's total waits
        for others to let go; it never becomes unschedulable for it. True if it changed."""
        changed = held != self.foreign
        self.foreign = dict(held)
        return changed

    def _never_fits(self, job: Job) -> Optional[str]:
        return why_never_fits(job, self.gpus(), self.excluded, self.cpu_total, self.cpu_only,
                              self.gpu_memory, self.resources)

    def schedule(self, candidates: Iterable[Job],
                 startable: Optional[Callable[[Job], bool]] = None) -> List[Placement]:
        """Start what can start now among ``candidates`` (in queue order). Once every GPU
        slot is busy only CPU-only jobs are looked at; ``startable`` (the runner's checks:
        dependencies, a job that can never run here) is asked only about the others."""
        now = self.clock()
        started: List[Placement] = []
        head: Optional[Job] = None
        reserved: set = set()
        head_start = None
        for job in candidates:
            if not self.has_room():
                break
            if job.gpus and self.only_cpu_jobs_fit():
                if not self.cpu_free:
                    break
                continue                # no GPU slot free: only CPU jobs can start now
            if startable is not None and not startable(job):
                continue
            if job.index in self.running or self.never_fits(job):
                continue
            p = self._fit(job)
            if p is None:
                if head is None and job.gpus > 0:
                    head = job
                    reserved, head_start = self._reservation(job, now)
                continue
            if head is not None and not p.cpu and set(p.gpu_ids) & reserved:
                if not self._ends_in_time(job, now, head_start):
                    continue
            self._take(job, p, now)
            started.append(p)
        return started

    def release(self, job_id: int, ran: bool = True) -> List[int]:
        """A job ended (``ran``: its duration informs later estimates) or was never
        started after all: free what it held. Returns slots that retired now."""
        alloc = self.running.pop(job_id, None)
        if alloc is None:
            return []
        if ran:
            self.durations += max(0.0, self.clock() - alloc.started)
            self.ended += 1
        p = alloc.placement
        for name, amount in named_resources(alloc.job):
            self.used[name] -= amount
        if p.cpu:
            self.cpu_free.append(p.slot)
            return []
        gone = []
        for i, gpu in zip(p.slots, p.gpu_ids):
            self.load[gpu] -= 1
            self.mem_used[gpu] -= alloc.memory
            if alloc.alone:
                self.alone[gpu] -= 1
            if i in self.retiring:
                self.retiring.discard(i)
                del self.slots[i]
                self._capacity_changed()
                gone.append(i)
            else:
                self.free.add(i)
        return gone

    def can_hand(self, slot: int) -> bool:
        """May ``slot`` (busy) be handed its next job: a GPU slot still in use, not
        retiring, on a GPU others are not using, not quarantined, not held by a job
        placed there alone."""
        return slot in self.slots and slot not in self.retiring \
            and self.slots[slot].gpu not in self.unavailable \
            and self.slots[slot].gpu not in self.excluded and not self.alone[self.slots[slot].gpu]

    def free_gpus(self) -> set:
        """The GPUs of the free slots that others are not using."""
        return {self.slots[i].gpu for i in self.free} - self.unavailable - self.excluded

    def hand_over(self, job_id: int, job: Job) -> None:
        """``job_id`` ended and ``job`` (a one-GPU job with no memory or named resources,
        handed to its slot ahead) started in its place: the slot stays held, by ``job``."""
        alloc = self.running.pop(job_id)
        self.durations += max(0.0, self.clock() - alloc.started)
        self.ended += 1
        for name, amount in named_resources(alloc.job):
            self.used[name] -= amount
        for gpu in alloc.placement.gpu_ids:
            self.mem_used[gpu] -= alloc.memory
        held = alloc.placement      # (built, not replaced: the path of every job)
        self.running[job.index] = _Alloc(Placement(job.index, held.slots, held.gpu_ids,
                                                   held.cpu), job, self.clock(), 0.0)

    # ------------------------------------------------------------ inner
    def _resources_fit(self, job: Job) -> bool:
        return all(self.used[n] + a <= self.resources.get(n, 0) for n, a in named_resources(job))

    def _fit(self, job: Job) -> Optional[Placement]:
        if not self._resources_fit(job):
            return None
        if job.gpus == 0:
            if not self.cpu_free:
                return None
            return Placement(job.index, (self.cpu_free[-1],), (), cpu=True)
        memory = job_memory(job)
        allowed = set(job.gpu_ids) if job.gpu_ids else None
        free = sorted((self.load[self.slots[i].gpu], gpu_order(self.slots[i].gpu), i)
                      for i in self.free)
        chosen, seen = [], set()
        alone = job.index in self.exclusive
        for _, _, i in free:
            gpu = self.slots[i].gpu
            if gpu in seen or gpu in self.unavailable or (allowed and gpu not in allowed):
                continue
            if gpu in self.excluded or self.alone[gpu] or (alone and self.load[gpu]):
                continue
            if memory and self.mem_used[gpu] + memory + self.foreign.get(gpu, 0.0) \
                    > self.gpu_memory.get(gpu, 0):
                continue
            seen.add(gpu)
            chosen.append(i)
            if len(chosen) == job.gpus:
                break
        if len(chosen) < job.gpus:
            return None
        chosen.sort()
        return Placement(job.index, tuple(chosen), tuple(self.slots[i].gpu for i in chosen))

    def _take(self, job: Job, p: Placement, now: float) -> None:
        memory = job_memory(job)
        for name, amount in named_resources(job):
            self.used[name] += amount
        if p.cpu:
            self.cpu_free.remove(p.slot)
        alone = not p.cpu and job.index in self.exclusive
        self.exclusive.discard(job.index)
        if not p.cpu:
            for i, gpu in zip(p.slots, p.gpu_ids):
                self.free.discard(i)
                self.load[gpu] += 1
                self.mem_used[gpu] += memory
                self.alone[gpu] += alone
        self.running[job.index] = _Alloc(p, job, now, memory if not p.cpu else 0.0, alone)

    def _mean(self) -> Optional[float]:
        return self.durations / self.ended if self.ended else None

    def _remaining(self, alloc: _Alloc, now: float) -> float:
        elapsed = now - alloc.started
        mean = self._mean()
        return max(mean - elapsed, elapsed) if mean is not None else elapsed

    def _reservation(self, job: Job, now: float) -> Tuple[set, Optional[float]]:
        """The GPUs the blocked head job will take first, and when it could start."""
        ready_at: Dict[str, float] = {}
        allowed = set(job.gpu_ids) if job.gpu_ids else None
        for gpu in self.gpus():
            if gpu in self.unavailable or gpu in self.excluded or (allowed and gpu not in allowed):
                continue
            has_free = any(self.slots[i].gpu == gpu for i in self.free)
            if has_free:
                ready_at[gpu] = now
                continue
            ends = [now + max(0.0, self._remaining(a, now)) for a in self.running.values()
                    if gpu in a.placement.gpu_ids]
            ready_at[gpu] = min(ends) if ends else now
        order = sorted(ready_at, key=lambda g: (ready_at[g], gpu_order(g)))[:max(1, int(job.gpus))]
        start = max((ready_at[g] for g in order), default=now)
        return set(order), start

    def _ends_in_time(self, job: Job, now: float, head_start: Optional[float]) -> bool:
        mean = self._mean()
        if mean is None:
            return True                 # nothing known yet: keep the GPUs busy
        expected = min(mean, job.timeout) if job.timeout else mean
        return head_start is not None and now + expected <= head_start
