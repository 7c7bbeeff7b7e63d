"""Admission for the Ray backend: which queued jobs are handed to Ray now.

Ray decides on which node, and with which GPU ids, a job runs. hog keeps the order
(priority, then submission) and decides *admission*. ``RayAdmission`` hands over jobs
in queue order while fewer than ``max_pending`` of those handed over have not started
yet, and never hands a job over while an earlier one that is still waiting asks for
more of a resource it wants (GPUs above all): Ray would give every GPU that frees up
to the narrower job, and a 2-GPU job in a stream of 1-GPU jobs would starve.

Each job handed over takes a virtual slot (0, 1, ... for GPU jobs, cpu0, cpu1, ...
for CPU-only ones) so that the runner, the store and the views keep their shape.
"""
import math
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from hog.backends.ray.resources import demand
from hog.model import Job, Slot
from hog.placement import MEMORY, Placement, Verdicts

MIN_PENDING = 8
RESERVED = {"GPU": "ask for GPUs with gpus=N", "memory": None,
            "object_store_memory": "it is Ray's own"}


def _amounts(need: Dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in sorted(need.items()) if v)


class RayAdmission:
    """Which queued jobs to hand to Ray now. Pure: no I/O, no Ray."""

    def __init__(self, max_pending: Optional[int] = None):
        self.nodes: List[Dict[str, float]] = []
        self.ready = False
        self.fixed_max_pending = max_pending
        self.pending: Dict[int, Job] = {}          # handed over, not started yet
        self.running: Dict[int, Job] = {}          # started (index -> job)
        self.slot_of: Dict[int, int] = {}
        self.slots: Dict[int, Slot] = {}           # virtual slots used so far
        self.free_gpu_slots: List[int] = []
        self.free_cpu_slots: List[int] = []
        self._verdicts = Verdicts(self._never_fits)

    # ---------------------------------------------------------- capacity
    def set_nodes(self, nodes: Sequence[Dict[str, float]]) -> None:
        self.nodes = [dict(n) for n in nodes]
        self.ready = True
        self._verdicts.forget()

    @property
    def max_pending(self) -> int:
        if self.fixed_max_pending is not None:
            return self.fixed_max_pending
        gpus = sum(n.get("GPU", 0) for n in self.nodes)
        return max(MIN_PENDING, 2 * math.ceil(gpus))

    def _room(self, cpu: bool) -> int:
        """How many more GPU (or CPU-only) jobs may wait in Ray: the two kinds are counted
        apart, so CPU-only jobs waiting for CPUs never keep GPU jobs from idle GPUs."""
        if not self.ready:
            return 0
        waiting = sum(1 for job in self.pending.values() if (not job.gpus) == cpu)
        return max(0, self.max_pending - waiting)

    def has_room(self) -> bool:
        return bool(self._room(False) or self._room(True))

    def room(self) -> int:
        return self._room(False)

    def slot_gpus(self) -> List[str]:
        return ["ray" for i in sorted(self.slots) if i >= 0]

    # ------------------------------------------------------------- rules
    def never_fits(self, job: Job) -> Optional[str]:
        return self._verdicts(job)

    def _never_fits(self, job: Job) -> Optional[str]:
        if job.gpu_ids:
            return "is pinned to GPU ids (gpu_ids); with --backend ray, Ray assigns the GPUs"
        for name, _ in job.resources:
            if name == MEMORY:
                return "declares memory= (GPU memory); with --backend ray, ask for a " \
                       "fraction of a GPU instead (gpus=0.5)"
            if name in RESERVED:
                return f"asks for the resource {name!r}, which Ray reserves" \
                       + (f"; {RESERVED[name]}" if RESERVED[name] else "")
        need = demand(job)
        if any(all(node.get(k, 0) >= v for k, v in need.items() if v) for node in self.nodes):
            return None
        widest = {k: max(n.get(k, 0) for n in self.nodes) for k, v in need.items() if v} \
            if self.nodes else {}
        has = _amounts(widest) or "nothing"
        return f"needs {_amounts(need) or 'nothing'} on one node; no node of the Ray " \
               f"cluster has that (the most any node has: {has})"

    def schedule(self, candidates: Iterable[Job],
                 startable: Optional[Callable[[Job], bool]] = None) -> List[Placement]:
        """Hand over what may go now among ``candidates`` (in queue order). Once no more
        GPU jobs may wait in Ray only CPU-only jobs are looked at; ``startable`` (the
        runner's checks) is asked only about the others."""
        placed: List[Placement] = []
        for job in candidates:
            if not self.has_room():
                break
            if job.gpus and not self._room(False):
                continue                # only CPU-only jobs may be handed over now
            if startable is not None and not startable(job):
                continue
            if not self._room(not job.gpus) or job.index in self.pending \
                    or job.index in self.running or self.never_fits(job) or self._held_back(job):
                continue
            placed.append(self._take(job))
        return placed

    def _held_back(self, job: Job) -> bool:
        """Does a job that waits in Ray ask for more of something this one wants?"""
        need = demand(job)
        for other in self.pending.values():
            theirs = demand(other)
            if any(v and theirs.get(k, 0) > v for k, v in need.items()):
                return True
        return False

    def _take(self, job: Job) -> Placement:
        cpu = not job.gpus
        pool = self.free_cpu_slots if cpu else self.free_gpu_slots
        if pool:
            pool.sort(reverse=not cpu)
            slot = pool.pop()
        else:
            used = [i for i in self.slots if (i < 0) == cpu]
            slot = (min(used, default=0) - 1) if cpu else (max(used, default=-1) + 1)
            self.slots[slot] = Slot(slot, "ray")
        self.pending[job.index] = job
        self.slot_of[job.index] = slot
        return Placement(job.index, (slot,), (), cpu=cpu)

    def started(self, job_id: int) -> None:
        job = self.pending.pop(job_id, None)
        if job is not None:
            self.running[job_id] = job

    def release(self, job_id: int, ran: bool = True) -> List[int]:
        self.pending.pop(job_id, None)
        self.running.pop(job_id, None)
        slot = self.slot_of.pop(job_id, None)
        if slot is not None:
            (self.free_cpu_slots if slot < 0 else self.free_gpu_slots).append(slot)
        return []

    def in_use(self) -> List[int]:
        return sorted(self.slot_of.values())
