"""The data hog passes around: frozen dataclasses and the status enum.

Nothing here does I/O. Jobs travel from the producer to the scheduler and on to
a consumer; outcomes travel back.
"""
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional, Tuple


class Status(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    UNSCHEDULABLE = "unschedulable"

    def __str__(self) -> str:
        return self.value

    @property
    def ok(self) -> bool:
        return self is Status.SUCCEEDED


@dataclass(frozen=True)
class Job:
    """One command to run, with what it asks for.

    ``index`` counts from 0 in source order and names the job folder.
    ``where`` is "file:line" of the job's origin, for error messages.
    """

    index: int
    command: str
    where: str = ""
    name: Optional[str] = None
    gpus: float = 1                    # a whole number; a fraction below 1 with Ray
    resources: Tuple[Tuple[str, float], ...] = ()
    env: Tuple[Tuple[str, str], ...] = ()
    cwd: Optional[str] = None
    timeout: Optional[float] = None
    retries: int = 0
    priority: int = 0
    gpu_ids: Tuple[str, ...] = ()      # affinity: only these GPU ids
    after: Tuple[str, ...] = ()        # names of jobs that must succeed first


def slot_label(slot: int) -> str:
    """Slots 0, 1, ... hold GPUs; CPU-only slots are -1, -2, ... shown as cpu0, cpu1."""
    return str(slot) if slot >= 0 else f"cpu{-slot - 1}"


@dataclass(frozen=True)
class Slot:
    """A place one job runs at a time: a GPU id (a label) and its position."""

    index: int
    gpu: str


@dataclass(frozen=True)
class Dispatch:
    """The scheduler's decision: run ``job`` on ``slot`` with these GPU ids."""

    job: Job
    slot: int
    gpu_ids: Tuple[str, ...]
    name: str
    attempt: int = 1


@dataclass(frozen=True)
class Outcome:
    """How one attempt of a job ended, as recorded in its folder."""

    index: int
    name: str
    slot: int
    status: Status
    exit_code: Optional[int]
    signal: Optional[str]
    started: float
    ended: float
    pid: Optional[int] = None
    attempt: int = 1
    err_path: str = ""
    note: str = field(default="")

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended - self.started)
