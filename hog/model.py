"""The data hog passes around: frozen dataclasses, the status enum and every message.

Nothing here does I/O. Jobs travel from the producer to the scheduler and on to
a consumer; outcomes travel back. Every message that crosses a pipe or the
producer's queue is one of the frozen dataclasses at the end of this module
(``hog.backends.wire`` pickles them as they are):

- producer -> runner: ``JobMsg``, ``SourceTotal``, ``SourceEnd``, ``SourceFailed``;
- runner -> a slot (a consumer, or the Ray bridge as ``ForSlot``): a ``Dispatch`` (to a
  busy local slot: its next job, started as soon as the current one ends; ``Withdraw``
  takes it back), ``Stop(StopHow.KILL | StopHow.CANCEL)``, ``Signal(signum)`` (forward
  it to the job) and ``Quit`` (exit);
- a backend -> the runner: ``Started``, ``Ended``, ``Withdrawn``, ``SlotLost``,
  ``CannotWrite``, ``BackendFailed``;
- the Ray bridge -> its backend: ``ClusterReady``, ``ClusterRefused``, ``ClusterNodes``.
"""
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple, Union


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
    retries: int = 0
    priority: int = 0
    gpu_ids: Tuple[str, ...] = ()      # affinity: only these GPU ids
    after: Tuple[str, ...] = ()        # names of jobs that must succeed first
    auto_name: bool = False            # ``name`` was made up by hog (an unnamed YAML sweep's
                                       # point), so it is not what identifies the job
    params: Tuple[Tuple[str, Any], ...] = ()   # a grid point: (parameter, value), in grid order


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
    source_pos: Optional[int] = None   # the job's position in the sweep's source (INFO)
    ident: Optional[str] = None        # its identity key (state/identity.py; INFO)
    rerun: str = ""                    # why it runs again without using a retry (INFO)
    oom_retry: bool = False            # the rerun of an out-of-memory failure, alone
    ahead: bool = False                # handed to a busy slot: it starts only as the
                                       # slot's current job succeeds, else goes back


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


# ------------------------------------------------------------------ messages
class StopHow(str, Enum):
    """How the runner stops a running job: KILL (``hog stop --now``, a second Ctrl-C, the
    runner gone) records it interrupted; CANCEL (``hog kill``) records it cancelled."""

    KILL = "kill"
    CANCEL = "cancel"

    @property
    def status(self) -> Status:
        """What an attempt stopped this way is recorded as (the one place that says so)."""
        return Status.INTERRUPTED if self is StopHow.KILL else Status.CANCELLED


@dataclass(frozen=True)
class Stop:
    """To a slot: end the job it runs."""

    how: StopHow


@dataclass(frozen=True)
class Signal:
    """To a slot: send ``signum`` to the process group of the job it runs (SIGUSR1 and
    SIGUSR2 the runner received: Slurm's warning before a time limit)."""

    signum: int


@dataclass(frozen=True)
class Withdraw:
    """To a local slot: do not start job ``index``, handed to it as its next job; the
    slot answers ``Withdrawn`` if it had not started it (else the job runs, and its
    ``Ended`` for the job before it comes first)."""

    index: int


@dataclass(frozen=True)
class Quit:
    """To a slot (or the Ray bridge): exit once the job it runs, if any, has ended."""


@dataclass(frozen=True)
class ForSlot:
    """To the Ray bridge, which serves every slot: ``message`` is for ``slot``."""

    slot: int
    message: Union[Dispatch, Stop, Signal]


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


@dataclass(frozen=True)
class Started:
    """A job's process started. ``host`` and ``gpu_ids`` are set when the backend chose
    them (Ray); None means this machine and the GPU ids of the dispatch. ``proc``: the
    job's identity where it runs on this machine."""

    slot: int
    index: int
    pid: int
    started: float
    host: Optional[str] = None
    gpu_ids: Optional[Tuple[str, ...]] = None
    proc: Optional[JobProcess] = None


@dataclass(frozen=True)
class Ended:
    """An attempt ended; its folder is complete (INFO and marker written).
    ``started_next``: its slot took the job handed to it ahead (``Dispatch.ahead``) as
    this one ended (its ``Started`` or ``Ended`` follows)."""

    outcome: Outcome
    started_next: bool = False


@dataclass(frozen=True)
class Withdrawn:
    """A slot gave back job ``index``, handed to it as its next job, without starting it."""

    slot: int
    index: int


@dataclass(frozen=True)
class SlotLost:
    """A slot's executor vanished; the backend has ended the job's process group, and
    recording the job is the runner's business."""

    slot: int
    why: str


@dataclass(frozen=True)
class CannotWrite:
    """A slot cannot write its job's folder now (disk full, read-only, gone): it keeps
    its job running and tries again; the runner starts nothing new until it can."""

    slot: int
    why: str


@dataclass(frozen=True)
class BackendFailed:
    """The backend cannot run anything any more."""

    why: str


Event = Union[Started, Ended, Withdrawn, SlotLost, CannotWrite, BackendFailed]


@dataclass(frozen=True)
class ClusterReady:
    """The Ray bridge joined the cluster; these are its live nodes' resources."""

    nodes: Sequence[Dict[str, float]]


@dataclass(frozen=True)
class ClusterRefused:
    """The Ray bridge could not join the cluster (one line, for the user)."""

    text: str


@dataclass(frozen=True)
class ClusterNodes:
    """The cluster's live nodes changed."""

    nodes: Sequence[Dict[str, float]]


@dataclass(frozen=True)
class JobMsg:
    """Producer: the source's next job."""

    job: Job


@dataclass(frozen=True)
class SourceTotal:
    """Producer: how many jobs the source holds (a file source, counted once)."""

    total: int


@dataclass(frozen=True)
class SourceEnd:
    """Producer: the source is read to its end; it held ``count`` jobs."""

    count: int


@dataclass(frozen=True)
class SourceFailed:
    """Producer: reading the source failed (one line, for the user); the jobs put before
    this message still run."""

    text: str


SourceMsg = Union[JobMsg, SourceTotal, SourceEnd, SourceFailed]
