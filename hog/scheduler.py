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
        self.slots: Dict[int, Slot] = {s.index: s for s in slots}
        self.resources = dict(resources or {})
        self.free = set(self.slots)
        self.load: Counter = Counter()
        self.holding: Dict[int, Tuple[int, ...]] = {}   # runner slot -> all slots it holds
        self.retiring: set = set()

    def add_slot(self, gpu: str) -> int:
        """A new slot on ``gpu``; returns its index (indices are never reused)."""
        index = max(self.slots, default=-1) + 1
        self.slots[index] = Slot(index, gpu)
        self.free.add(index)
        return index

    def retire_slot(self, index: int) -> bool:
        """Take a slot out of use; True if it is free now (gone), False if it will
        go when its job ends."""
        if index in self.free:
            self.free.discard(index)
            del self.slots[index]
            return True
        self.retiring.add(index)
        return False

    def slot_gpus(self) -> List[str]:
        return [s.gpu for i, s in sorted(self.slots.items()) if i not in self.retiring]

    @property
    def has_free(self) -> bool:
        return bool(self.free)

    @property
    def busy(self) -> int:
        return len(self.holding)

    def never_fits(self, job: Job) -> Optional[str]:
        """Why ``job`` can never run on these slots, or None if it can."""
        gpus = len(set(s.gpu for s in self.slots.values()))
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

    def release(self, slot: int) -> List[int]:
        """The job run by ``slot`` ended: give back every slot it held. Returns the
        slots that retired now."""
        gone = []
        for i in self.holding.pop(slot, ()):
            self.load[self.slots[i].gpu] -= 1
            if i in self.retiring:
                self.retiring.discard(i)
                del self.slots[i]
                gone.append(i)
            else:
                self.free.add(i)
        return gone
