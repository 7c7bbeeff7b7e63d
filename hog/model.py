"""The data hog keeps: frozen dataclasses and the status enum (a job, how an attempt
ended, what it used, a job's process identity).

Nothing here does I/O. The messages between hog's processes are ``hog.messages``'s:
the store and the verbs import only this module, so ``hog status`` does not pay for
building the messages' classes.
"""
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, Iterable, Optional, Tuple, TypeVar, Union


class Status(str, Enum):
    QUEUED = "queued"
    HANDED = "handed"           # claimed and handed to a busy slot as its next job; not started
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

    @property
    def finished(self) -> bool:
        """The attempt is over (anything but queued, handed or running)."""
        return self not in (Status.QUEUED, Status.HANDED, Status.RUNNING)

    @property
    def counts_as_failure(self) -> bool:
        """Finished without succeeding, and not by the user's choice (cancelled)."""
        return self.finished and self not in (Status.SUCCEEDED, Status.CANCELLED)

    @property
    def rerunnable(self) -> bool:
        """``hog retry`` may queue it again: finished, but not succeeded."""
        return self.finished and self is not Status.SUCCEEDED

    @property
    def resumed(self) -> bool:
        """Running the same sweep again queues it again (a cancelled job stays so)."""
        return self.rerunnable and self is not Status.CANCELLED

    @property
    def started_command(self) -> bool:
        """An attempt with this status had started its command (skipped and
        unschedulable jobs end without running; queued and handed ones have not started)."""
        return self not in (Status.QUEUED, Status.HANDED, Status.SKIPPED, Status.UNSCHEDULABLE)

    @property
    def ran_its_course(self) -> bool:
        """The attempt ran until it ended by itself or by its timeout: its duration
        says how long such a job takes (for estimates)."""
        return self in (Status.SUCCEEDED, Status.FAILED, Status.TIMEOUT)

    @classmethod
    def having(cls, meaning: str) -> Tuple["Status", ...]:
        """Every status with the property ``meaning`` (``"finished"``, ...), in order."""
        return tuple(s for s in cls if getattr(s, meaning))

    @staticmethod
    def sql_list(statuses: Iterable[Union["Status", str]]) -> str:
        """An SQL ``IN`` list of statuses: ``('failed', 'timeout')``. The values are the
        enum's own words, so quoting them needs no escaping."""
        return "(" + ", ".join(f"'{Status(s).value}'" for s in statuses) + ")"


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
    retries: Optional[int] = None      # None: not set (--retries, else none); 0 is its own
    priority: int = 0
    gpu_ids: Tuple[str, ...] = ()      # affinity: only these GPU ids
    after: Tuple[str, ...] = ()        # names of jobs that must succeed first
    auto_name: bool = False            # ``name`` was made up by hog (an unnamed YAML sweep's
                                       # point), so it is not what identifies the job
    params: Tuple[Tuple[str, Any], ...] = ()   # a grid point: (parameter, value), in grid order


_D = TypeVar("_D")


def evolve(obj: _D, **changes: Any) -> _D:
    """``dataclasses.replace`` for this module's frozen dataclasses (no ``__post_init__``,
    no slots): a copy of ``obj``'s fields with ``changes``, without calling ``__init__``
    (a fifth of the cost, on the runner's path of every job)."""
    new = object.__new__(type(obj))
    fields_of = new.__dict__
    fields_of.update(obj.__dict__)
    fields_of.update(changes)
    return new


def slot_label(slot: int) -> str:
    """Slots 0, 1, ... hold GPUs; CPU-only slots are -1, -2, ... shown as cpu0, cpu1."""
    return str(slot) if slot >= 0 else f"cpu{-slot - 1}"


@dataclass(frozen=True)
class Slot:
    """A place one job runs at a time: a GPU id (a label) and its position."""

    index: int
    gpu: str


@dataclass(frozen=True)
class Usage:
    """What one attempt used. CPU seconds and peak resident memory come from the kernel's
    accounting of the reaped job (its process and every descendant reaped within it or by
    its slot); GPU figures from the GPU monitor's samples (None: not known)."""

    cpu_user_s: Optional[float] = None
    cpu_system_s: Optional[float] = None
    max_rss_bytes: Optional[int] = None
    gpu_mem_peak_bytes: Optional[int] = None
    gpu_util_mean: Optional[float] = None      # percent, over the samples taken while it ran

    def fields(self) -> Dict[str, Optional[float]]:
        """The figures by name (INFO, results, ``hog status --json``), in this order."""
        return {name: getattr(self, name) for name in USAGE_FIELDS}

    @classmethod
    def from_fields(cls, figures: object) -> "Usage":
        """``fields()`` read back (what a Ray node sent); unknown names and anything
        but a mapping are ignored."""
        if not isinstance(figures, dict):
            return cls()
        return cls(**{k: v for k, v in figures.items() if k in USAGE_FIELDS})


USAGE_FIELDS = ("cpu_user_s", "cpu_system_s", "max_rss_bytes", "gpu_mem_peak_bytes",
                "gpu_util_mean")
NO_USAGE = Usage()


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
    usage: Usage = NO_USAGE

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended - self.started)


@dataclass(frozen=True)
class JobProcess:
    """Who a running job is, as recorded when it starts: its leader's pid, process group,
    session and kernel start time (``hog.proc``). What is left of a job after its runner
    died is found by these, and a newer process that reuses the numbers is told apart
    by the start time."""

    pid: int
    pgid: int
    sid: int
    start: str


@dataclass(frozen=True)
class JobTrace:
    """How to find what is left of a job (``spawn.leftovers``): its recorded identity
    (None if it never got recorded), and the entry of its environment that every
    process it starts inherits (``HOG_JOB_DIR=...``), which finds those that left its
    group and session too."""

    proc: Optional[JobProcess]
    env: str
