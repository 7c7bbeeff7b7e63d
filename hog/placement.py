"""Placement decisions, shared by both admissions (the local ``Scheduler`` and Ray's):
what a decision looks like, the never-fits memo, and the one resource name with a
per-GPU meaning. Pure data at the bottom of the import graph: it imports only
``hog.model``.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from hog.model import Job

MEMORY = "memory"     # a per-GPU resource: the declared sum on a GPU stays within its total


@dataclass(frozen=True)
class Placement:
    """Run job ``job_id`` on these slots (the first runs it) with these GPU ids."""

    job_id: int
    slots: Tuple[int, ...]
    gpu_ids: Tuple[str, ...]
    cpu: bool = False

    @property
    def slot(self) -> int:
        return self.slots[0]


class Verdicts:
    """Why a job can never run here (None: it can), worked out by ``decide`` once per job
    and what it asks for, and remembered until the capacity changes (``forget``)."""

    LIMIT = 4096

    def __init__(self, decide: Callable[[Job], Optional[str]]):
        self._decide = decide
        self._known: Dict[tuple, Optional[str]] = {}

    def __call__(self, job: Job) -> Optional[str]:
        key = (job.index, job.gpus, job.gpu_ids, job.resources)
        if key not in self._known:
            if len(self._known) > self.LIMIT:
                self._known.clear()
            self._known[key] = self._decide(job)
        return self._known[key]

    def forget(self) -> None:
        self._known.clear()
