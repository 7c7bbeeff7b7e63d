"""The messages between hog's processes: frozen dataclasses, pickled as they are
(``hog.backends.wire``); the data they carry is ``hog.model``'s.

- producer -> runner: ``JobMsg``, ``SourceTotal``, ``SourceEnd``, ``SourceFailed``;
- runner -> a slot (a consumer, or the Ray bridge as ``ForSlot``, which with the
  Ray bridge's own messages is in ``hog.backends.ray.messages``): a ``Dispatch`` (to a
  busy local slot: its next job, started as soon as the current one ends; ``Withdraw``
  takes it back), ``Stop(StopHow.KILL | StopHow.CANCEL)``, ``Signal(signum)`` (forward
  it to the job) and ``Quit`` (exit);
- a backend -> the runner: ``Started``, ``Ended``, ``Withdrawn``, ``SlotLost``,
  ``CannotWrite``, ``BackendFailed``;
- the Ray bridge -> its backend: ``ClusterReady``, ``ClusterRefused``, ``ClusterNodes``
  (``hog.backends.ray.messages``: only a Ray run makes those classes).
"""
from dataclasses import dataclass
from enum import Enum
from typing import Optional, Tuple, Union

from hog.model import Job, JobProcess, Outcome, Status


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
    ahead: bool = False                # handed to a busy slot: it starts only after the
                                       # slot's current job succeeds (even if it comes
                                       # after that job ended), else goes back


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
class JobMsg:
    """Producer: the source's next jobs, in order (one, or a batch read from a file)."""

    jobs: Tuple[Job, ...]


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
