"""In-process stand-ins for the engine's processes, so a test can step the loop and
decide every event itself; and the ``Clock`` and ``RecordingDisplay`` the engine's
stepped tests inject.

``InlineBackend`` is a ``Backend`` (and ``Resizable``) that runs nothing: ``submit``
records the dispatch and opens its job folder (``hog.backends.attempt.Attempt``, so the
folder contract holds); the test then says when the job starts, ends, loses its slot
or the backend fails (``start_job``, ``end_job``, ``lose_slot``, ``fail``). Each of
those queues an event and writes a byte to a socket pair: the backend's one waitable,
so the engine's ``wait()`` sees it like a slot's pipe.

``InlineContext`` replaces the fork context for the producer: its ``Queue`` reads
the job source lazily in this process, one message per ``poll()``, so a test knows
exactly how far the source has been read; its ``Process`` starts nothing.

Injection: a test gives ``Runner`` a ``backend_factory`` that returns an
``InlineBackend`` with the real local ``Scheduler`` as its admission
(``hog.backends.factory.local_scheduler``), and ``ctx=InlineContext()``.
"""
import pickle
import socket
import time
from collections import deque
from typing import Any, Deque, Dict, Iterable, Iterator, List, Optional, Tuple

from hog.backends.attempt import Attempt
from hog.engine.progress import Progress
from hog.errors import HogError, SourceError
from hog.messages import (
    BackendFailed,
    Dispatch,
    Ended,
    Event,
    JobMsg,
    SlotLost,
    SourceEnd,
    SourceFailed,
    Started,
    StopHow,
    Withdrawn,
)
from hog.model import Outcome, Status
from hog.sources import SourceSpec, open_source
from hog.state.jobdir import Layout
from hog.state.store import Store


class InlineBackend:
    """A backend whose jobs start and end when the test says so."""

    def __init__(self, layout: Layout, slots: Iterable[int], gpus: Iterable[str] = ()):
        self.layout = layout
        self.slots = set(slots)
        self.gpus = list(gpus)
        self.started = False
        self.submitted: List[Dispatch] = []
        self.committed: List[Optional[str]] = []   # each dispatch's status in the store
        self.stops: List[Tuple[int, StopHow]] = []
        self.added: List[int] = []
        self.removed: List[int] = []
        self.shut_down: Optional[List[int]] = None
        self.attempts: Dict[int, Attempt] = {}     # by slot
        self.events: Deque[Event] = deque()
        self.took = 1.0         # how long a job ran, by default (``end_job``)
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._next_pid = 40000

    # ----------------------------------------------------- the Backend
    def label(self) -> str:
        return ",".join(self.gpus)

    def start(self) -> None:
        self.started = True

    def submit(self, d: Dispatch) -> None:
        store = Store(self.layout.state_dir)    # another connection: is the claim committed?
        try:
            row = store.row(d.job.index)
            self.committed.append(None if row is None else row.status)
        finally:
            store.close()
        self.submitted.append(d)
        self.slots.add(d.slot)
        self.attempts[d.slot] = Attempt.open(self.layout, d)

    def stop(self, slot: int, how: StopHow) -> None:
        self.stops.append((slot, how))

    def waitables(self) -> List:
        return [self._r]

    def owns(self, obj: object) -> bool:
        return obj is self._r

    def receive(self, obj: object) -> List[Event]:
        try:
            while self._r.recv(64):
                pass
        except BlockingIOError:
            pass
        events = list(self.events)
        self.events.clear()
        return events

    def shutdown(self, running: Iterable[int]) -> None:
        self.shut_down = list(running)
        self._r.close()
        self._w.close()

    # ---------------------------------------------------- Resizable
    def has_slot(self, slot: int) -> bool:
        return slot in self.slots

    def add_slot(self, slot: int) -> None:
        self.slots.add(slot)
        self.added.append(slot)

    def remove_slot(self, slot: int) -> None:
        self.slots.discard(slot)
        self.removed.append(slot)

    # ------------------------------------------- what the test decides
    @property
    def pending(self) -> bool:
        return bool(self.events)

    def _queue(self, event: Event) -> None:
        self.events.append(event)
        self._w.send(b"!")

    def dispatch_on(self, slot: int) -> Dispatch:
        return self.attempts[slot].d

    def start_job(self, slot: int) -> int:
        """The job on ``slot`` starts (INFO says running); its pid."""
        attempt = self.attempts[slot]
        pid = self._next_pid
        self._next_pid += 1
        now = time.time()
        attempt.started(pid, now)
        self._queue(Started(slot=slot, index=attempt.d.job.index, pid=pid, started=now))
        return pid

    def end_job(self, slot: int, status: Status = Status.SUCCEEDED,
                exit_code: Optional[int] = None, note: str = "",
                started_next: bool = False, took: Optional[float] = None) -> Outcome:
        """The job on ``slot`` ends as ``status`` (its folder gets INFO and the marker);
        ``exit_code`` defaults to 0 for succeeded, 1 for failed, none otherwise. It ran
        ``took`` seconds (default ``self.took``: a job of a second, not a short one,
        which a slot is handed more jobs ahead after)."""
        if self.attempts[slot].pid is None:
            self.start_job(slot)
        attempt = self.attempts.pop(slot)
        if exit_code is None:
            exit_code = {Status.SUCCEEDED: 0, Status.FAILED: 1}.get(status)
        took = self.took if took is None else took
        assert attempt.start_time is not None
        outcome = attempt.finished(status, exit_code, None, attempt.start_time + took,
                                   note=note)
        self._queue(Ended(outcome, started_next=started_next))
        return outcome

    def lose_slot(self, slot: int, why: str = "its slot process died (exit code -9)") -> None:
        """The slot's executor vanishes (the backend has ended its job's process)."""
        self.attempts.pop(slot, None)
        self.slots.discard(slot)
        self._queue(SlotLost(slot, why))

    def fail(self, why: str) -> None:
        self._queue(BackendFailed(why))


# --------------------------------------------------------------- the producer
def source_messages(spec: SourceSpec) -> Iterator[bytes]:
    """What the producer process would put on its queue for ``spec``, lazily."""
    n = 0
    try:
        for job in open_source(spec):
            yield pickle.dumps(JobMsg((job,)))
            n += 1
    except (HogError, SourceError) as e:     # as hog.sources.producer.produce says it
        yield pickle.dumps(SourceFailed(str(e)))
        return
    except Exception as e:  # noqa: BLE001 - as the producer reports it
        yield pickle.dumps(SourceFailed(f"{spec.path}: reading the job source failed: "
                                        f"{type(e).__name__}: {e}"))
        return
    yield pickle.dumps(SourceEnd(n))


class InlineReader:
    """The queue's reader end: ``poll()`` reads the source's next message, if any."""

    def __init__(self) -> None:
        self.messages: Iterator[bytes] = iter(())
        self.buffer: Deque[bytes] = deque()
        self.exhausted = False

    def poll(self, timeout: float = 0.0) -> bool:
        if not self.buffer and not self.exhausted:
            try:
                self.buffer.append(next(self.messages))
            except StopIteration:
                self.exhausted = True
        return bool(self.buffer)


class InlineQueue:
    def __init__(self, maxsize: int = 0):
        self._reader = InlineReader()

    def get(self) -> bytes:
        assert self._reader.poll(), "get() with nothing to read"
        return self._reader.buffer.popleft()

    def close(self) -> None:
        pass

    def cancel_join_thread(self) -> None:
        pass


class InlineProcess:
    """The producer, run lazily by its queue's reader in this process."""

    def __init__(self, target=None, name: str = "", args: tuple = ()):
        self.spec, self.queue = args
        self.sentinel = object()
        self.exitcode: Optional[int] = None

    def start(self) -> None:
        self.queue._reader.messages = source_messages(self.spec)

    def is_alive(self) -> bool:
        return self.exitcode is None

    def kill(self) -> None:
        self.exitcode = -9

    def join(self, timeout: Optional[float] = None) -> None:
        if self.exitcode is None and self.queue._reader.exhausted:
            self.exitcode = 0


class InlineContext:
    """The two things the runner asks of its fork context for the producer."""

    Queue = InlineQueue
    Process = InlineProcess


class Clock:
    """The runner's clock: it moves only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class RecordingDisplay:
    """A display that keeps what the runner told it."""

    def __init__(self, progress: Progress, mode: str):
        self.progress = progress
        self.mode = mode
        self.messages: List[str] = []
        self.started: List[str] = []
        self.ended: List[Outcome] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def idle(self) -> None:
        pass

    def job_started(self, slot: int, name: str, gpus: str, pid: int) -> None:
        self.started.append(name)

    def job_ended(self, o: Outcome) -> None:
        self.ended.append(o)

    def message(self, text: str) -> None:
        self.messages.append(text)


class HandingBackend(InlineBackend):
    """An ``InlineBackend`` that is also ``PreDispatching``, as the local slots are: a
    dispatch to a busy slot is held as one of its next jobs (``nexts``, in order) and
    the first started, like a consumer does, right after the slot's current job ends
    (its ``Ended`` first, then the next one's ``Started``); after a job that did not
    succeed every held one goes back (``Withdrawn``), and ``withdraw`` gives one back."""

    def __init__(self, layout: Layout, slots: Iterable[int], gpus: Iterable[str] = ()):
        super().__init__(layout, slots, gpus)
        self.nexts: Dict[int, List[Dispatch]] = {}
        self.withdrawals: List[int] = []
        self.last_ok: Dict[int, bool] = {}      # by slot: its last job succeeded, and
                                                # nothing followed it yet
        self.in_flight: Dict[int, List[Any]] = {}   # by slot: sent, not yet read (delay)

    def submit(self, d: Dispatch) -> None:
        if d.slot in self.in_flight:
            self.in_flight[d.slot].append(d)
            return
        if d.slot in self.attempts:
            store = Store(self.layout.state_dir)
            try:
                row = store.row(d.job.index)
                self.committed.append(None if row is None else row.status)
            finally:
                store.close()
            self.nexts.setdefault(d.slot, []).append(d)
            return
        if d.ahead:
            self.arrives_late(d)
            return
        super().submit(d)

    def arrives_late(self, d: Dispatch) -> None:
        """``d``, handed ahead, reaches its slot after the slot's job ended: the slot
        starts it if that job succeeded (as a consumer does), else gives it back."""
        if self.last_ok.pop(d.slot, False):
            self.submitted.append(d)
            self.attempts[d.slot] = Attempt.open(self.layout, d)
            self.start_job(d.slot)
        else:
            self._queue(Withdrawn(d.slot, d.job.index))

    def delay(self, slot: int, every: bool = False) -> Dispatch:
        """The last job handed to ``slot`` (``every``: all it holds) is still on its way
        (and whatever is sent to the slot after it) until ``deliver``; the first of
        them."""
        handed = self.nexts[slot]
        moved = handed[:] if every else [handed[-1]]
        del handed[len(handed) - len(moved):]
        if not handed:
            del self.nexts[slot]
        self.in_flight[slot] = list(moved)
        return moved[0]

    def deliver(self, slot: int) -> None:
        """What was sent to ``slot`` since ``delay`` reaches it, in order (a slot reads
        what waits in its pipe before it starts a handed job that came late: a
        ``Withdraw`` of it there takes it back)."""
        messages = self.in_flight.pop(slot)
        for i, message in enumerate(messages):
            if isinstance(message, Dispatch):
                if message.ahead and slot not in self.attempts \
                        and message.job.index in messages[i + 1:]:
                    self.last_ok.pop(slot, None)
                    self._queue(Withdrawn(slot, message.job.index))
                else:
                    self.submit(message)
            else:
                self.withdraw(slot, message)

    def withdraw(self, slot: int, index: int) -> None:
        if slot in self.in_flight:
            self.in_flight[slot].append(index)
            return
        self.withdrawals.append(index)
        handed = self.nexts.get(slot, [])
        for d in handed:
            if d.job.index == index:
                handed.remove(d)
                if not handed:
                    del self.nexts[slot]
                self._queue(Withdrawn(slot, index))
                break

    def lose_slot(self, slot: int, why: str = "its slot process died (exit code -9)") -> None:
        self.nexts.pop(slot, None)      # (what it held goes with it)
        self.in_flight.pop(slot, None)
        super().lose_slot(slot, why)

    def end_job(self, slot: int, status: Status = Status.SUCCEEDED,
                exit_code: Optional[int] = None, note: str = "",
                started_next: bool = False, took: Optional[float] = None) -> Outcome:
        handed = self.nexts.pop(slot, [])
        d = handed.pop(0) if handed else None
        if handed:
            self.nexts[slot] = handed
        if d is not None and status is not Status.SUCCEEDED:    # given back, as a slot does
            for h in [d] + self.nexts.pop(slot, []):
                self._queue(Withdrawn(slot, h.job.index))
            d = None
        outcome = super().end_job(slot, status, exit_code, note, started_next=d is not None,
                                  took=took)
        self.last_ok[slot] = d is None and status is Status.SUCCEEDED
        if d is not None:       # the next one is spawned before the runner hears
            self.submitted.append(d)
            self.attempts[slot] = Attempt.open(self.layout, d)
            self.start_job(slot)
        return outcome
