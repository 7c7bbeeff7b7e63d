"""The boundaries between the runner and where its jobs run, as Protocols.

A backend pairs a ``Backend`` (it executes dispatched jobs and reports ``hog.messages``
events) with an ``Admission`` (it decides which queued jobs may start now, and where).
``hog.backends.factory.make_backend`` builds the pair from the run's configuration. What a
backend can do beyond that is a capability it has or lacks, tested with
``isinstance``: ``Resizable`` (slots added and removed while it runs: ``hog gpus``),
``Signalling`` (a signal delivered to a slot's job) and ``LocalCapacity`` (an
admission over this machine's own GPUs).
"""
from typing import (
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    runtime_checkable,
)

from hog.messages import Dispatch, Event, StopHow
from hog.model import Job
from hog.placement import Placement


@runtime_checkable
class Backend(Protocol):
    """Runs what the runner dispatches; decides nothing."""

    def label(self) -> str:
        """What the runner's row in the store says it runs on (its GPUs, a cluster)."""

    def start(self) -> None:
        """Start the backend's processes (it knows its first slots from the factory)."""

    def submit(self, d: Dispatch) -> None:
        """Run ``d`` on its slot (the slot's claim is committed)."""

    def stop(self, slot: int, how: StopHow) -> None:
        """End the job that runs on ``slot``; its ``Ended`` says how it was recorded."""

    def waitables(self) -> List:
        """What the runner's ``wait()`` watches for this backend."""

    def owns(self, obj: object) -> bool:
        """Is ``obj`` (ready after ``wait()``) one of ``waitables()``?"""

    def receive(self, obj: object) -> List[Event]:
        """The events one ready waitable brings (``Started``, ``Ended``, ``SlotLost``,
        ``BackendFailed``)."""

    def shutdown(self, running: Iterable[int]) -> None:
        """Kill the jobs of ``running`` slots and stop every process of the backend."""


@runtime_checkable
class Resizable(Protocol):
    """A backend whose slots the runner adds and removes (``hog gpus``, a lost slot)."""

    def has_slot(self, slot: int) -> bool: ...

    def add_slot(self, slot: int) -> None: ...

    def remove_slot(self, slot: int) -> None: ...


@runtime_checkable
class Signalling(Protocol):
    """A backend that delivers a signal to the job running on a slot (its process group):
    the runner forwards SIGUSR1 and SIGUSR2 to its jobs through it."""

    def signal(self, slot: int, signum: int) -> None: ...


def implements(obj: object, protocol: type) -> bool:
    """``isinstance(obj, protocol)`` for the capability Protocols here (methods only),
    asked once per class: a runtime Protocol's ``isinstance`` costs tens of
    microseconds, too much for every job."""
    key = (type(obj), protocol)
    known = _IMPLEMENTS.get(key)
    if known is None:
        known = _IMPLEMENTS[key] = isinstance(obj, protocol)
    return known


_IMPLEMENTS: Dict[Tuple[type, type], bool] = {}


@runtime_checkable
class PreDispatching(Protocol):
    """A backend whose busy slots take their next job ahead (``submit`` to a busy slot)
    and start it the moment the current one ends; ``withdraw`` takes it back (answered
    by ``Withdrawn`` unless the slot had already started it)."""

    def withdraw(self, slot: int, index: int) -> None: ...


Startable = Callable[[Job], bool]


@runtime_checkable
class Admission(Protocol):
    """Which queued jobs start now, and on which slots. Pure: no I/O."""

    def has_room(self) -> bool:
        """May any job start now?"""

    def room(self) -> int:
        """How many more GPU jobs could start now (the runner sizes its first reads of the
        job source by it)."""

    def schedule(self, candidates: Iterable[Job],
                 startable: Optional[Startable] = None) -> List[Placement]:
        """Place what may start now among ``candidates`` (in queue order). ``startable``
        is the runner's last word on a job the admission would consider (False: not now,
        or never; the runner has dealt with it); jobs that cannot start for lack of room
        are skipped without asking it."""

    def started(self, job_id: int) -> None:
        """The process of a placed job started."""

    def release(self, job_id: int, ran: bool = True) -> List[int]:
        """A placed job ended (or was never started after all); returns slots that went
        out of use now."""

    def never_fits(self, job: Job) -> Optional[str]:
        """Why ``job`` can never run here, or None."""

    def slot_gpus(self) -> List[str]:
        """The GPU of each slot in use, by slot (for the view)."""


@runtime_checkable
class LocalCapacity(Protocol):
    """An admission over this machine's own GPUs (the local scheduler)."""

    def owns_slot(self, slot: int) -> bool:
        """Is ``slot`` one of the runner's GPU slots (one being retired included)?"""

    def set_gpu_memory(self, gpu: str, size: float) -> None: ...

    def set_foreign_memory(self, held: Dict[str, float]) -> bool:
        """Others' processes hold ``held`` bytes per GPU id: ``memory=`` jobs fit in the
        rest. True if that changed anything."""

    def set_unavailable(self, gpu_ids: Iterable[str]) -> bool:
        """Others use ``gpu_ids``: start nothing there. True if that changed anything."""

    def set_excluded(self, gpu_ids: Iterable[str]) -> bool:
        """``gpu_ids`` are quarantined: place nothing there. True if that changed anything."""

    def want_alone(self, job_id: int) -> None:
        """Place ``job_id``'s next attempt on GPUs no other job uses, alone while it runs."""

    def resize(self, wanted: Sequence[str]) -> Tuple[List[int], List[int]]:
        """Make the slots ``wanted`` (GPU ids, one per slot): the slots to remove now and
        the slots to add (others are removed once their job ends)."""

    def can_hand(self, slot: int) -> bool:
        """May busy ``slot`` be handed its next job (in use, not retiring, GPU free)?"""

    def hand_over(self, job_id: int, job: Job) -> None:
        """``job_id`` ended; ``job``, handed to its slot ahead, holds the slot now."""

    def free_gpus(self) -> set:
        """The GPUs of the free slots that others are not using."""

    def only_cpu_jobs_fit(self) -> bool:
        """Every GPU slot is busy, so only a CPU-only job could start now (a GPU job is
        not even looked at)."""
