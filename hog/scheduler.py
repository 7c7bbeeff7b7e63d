"""The scheduler: decides which slot(s) run a job. Pure: no I/O, no processes.

Slots are (index, GPU id) pairs; a GPU id listed twice gives two slots on it.
A job asking for ``gpus: k`` takes ``k`` free slots on ``k`` distinct GPUs and
sees those ids; ``gpus: 0`` takes one slot and sees no GPU. Among free slots the
one on the least loaded GPU is taken first (lowest index breaks ties), so
``--gpus 0,0,1,1`` with two jobs uses both GPUs. Jobs start in the order they
arrive; a job that cannot fit now waits for slots to free up, and a job that can
never fit (more GPUs than the runner has, a resource it lacks) is reported.
"""
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from hog.model import Dispatch, Job, Slot


class Scheduler:
    def __init__(self, slots: Sequence[Slot], resources: Optional[Dict[str, float]] = None):
        self.slots: List[Slot] = list(slots)
        self.resources = dict(resources or {})
        self.free = set(s.index for s in self.slots)
        self.load: Counter = Counter()
        self.holding: Dict[int, Tuple[int, ...]] = {}   # runner slot -> all slots it holds

    @property
    def has_free(self) -> bool:
        return bool(self.free)

    @property
    def busy(self) -> int:
        return len(self.holding)

    def never_fits(self, job: Job) -> Optional[str]:
        """Why ``job`` can never run on these slots, or None if it can."""
        gpus = len(set(s.gpu for s in self.slots))
        if job.gpus > gpus:
            return f"needs {job.gpus} GPUs; this runner has {gpus}"
        for name, amount in job.resources:
            if name not in self.resources:
                return f"needs {name}={amount:g}; this runner has no {name}"
            if amount > self.resources[name]:
                return f"needs {name}={amount:g}; this runner has {self.resources[name]:g}"
        return None

    def place(self, job: Job, name: str, attempt: int = 1) -> Optional[Dispatch]:
        """Take slots for ``job`` now and return the dispatch, or None if none fit."""
        free = sorted((self.load[self.slots[i].gpu], i) for i in self.free)
        if not free:
            return None
        if job.gpus == 0:
            chosen = [free[0][1]]
            gpu_ids: Tuple[str, ...] = ()
        else:
            chosen, seen = [], set()
            for _, i in free:
                gpu = self.slots[i].gpu
                if gpu not in seen:
                    seen.add(gpu)
                    chosen.append(i)
                    if len(chosen) == job.gpus:
                        break
            if len(chosen) < job.gpus:
                return None
            chosen.sort()
            gpu_ids = tuple(self.slots[i].gpu for i in chosen)
        for i in chosen:
            self.free.discard(i)
            self.load[self.slots[i].gpu] += 1
        self.holding[chosen[0]] = tuple(chosen)
        return Dispatch(job=job, slot=chosen[0], gpu_ids=gpu_ids, name=name, attempt=attempt)

    def release(self, slot: int) -> None:
        """The job run by ``slot`` ended: give back every slot it held."""
        for i in self.holding.pop(slot, ()):
            self.free.add(i)
            self.load[self.slots[i].gpu] -= 1
