"""The local backend (default): one consumer process per slot on this machine.

It implements ``hog.backends.base.Backend``, ``Resizable`` and ``PreDispatching``
(a ``Dispatch`` to a busy slot is its next job; ``withdraw`` takes it back): the
runner decides what runs and when, and records every transition in the store; this
backend only starts each slot's consumer, hands it its jobs and turns what it reports
into events.
CPU-only slots (-1, -2, ...) start on their first job.
"""
import signal
import time
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Union

from hog.backends import spawn, wire
from hog.backends.consumer import consumer_main
from hog.backends.jobenv import job_dir_variable
from hog.messages import (
    Dispatch,
    Ended,
    Event,
    Quit,
    Signal,
    SlotLost,
    Started,
    Stop,
    StopHow,
    Withdraw,
    Withdrawn,
)
from hog.model import JobProcess, JobTrace
from hog.state.info import info_process
from hog.state.jobdir import Layout
from hog.state.jobread import read_info

if TYPE_CHECKING:   # the context's classes (multiprocess mirrors multiprocessing's)
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

__all__ = ["LocalBackend"]


class LocalBackend:
    """One consumer process per slot, each with a duplex pipe to the runner."""

    def __init__(self, ctx, layout: Layout, grace: float, slots: Sequence[int] = (),
                 gpus: Sequence[str] = ()):
        self.ctx = ctx
        self.first_slots = list(slots)
        self.gpus = list(gpus)
        self.layout = layout
        self.grace = grace
        self.conns: Dict[int, "Connection"] = {}
        self.procs: Dict[int, "BaseProcess"] = {}
        self.slot_of_conn: Dict[int, int] = {}
        self.readers: Dict[int, wire.Reader] = {}
        self.pids: Dict[int, int] = {}
        self.started: Dict[int, Started] = {}      # per slot: its running job's start
        self.sent: Dict[int, Dict[int, Dispatch]] = {}     # per slot: jobs not ended yet

    def label(self) -> str:
        return ",".join(self.gpus)

    def start(self) -> None:
        for slot in self.first_slots:
            self.add_slot(slot)

    def has_slot(self, slot: int) -> bool:
        return slot in self.conns

    def add_slot(self, slot: int) -> None:
        ours, theirs = self.ctx.Pipe(duplex=True)
        close = [ours] + list(self.conns.values())
        proc = self.ctx.Process(target=consumer_main, name=f"hog-slot-{slot}",
                                args=(theirs, self.layout, self.grace, close))
        proc.start()
        theirs.close()
        self.conns[slot] = ours
        self.readers[slot] = wire.Reader(ours)
        self.procs[slot] = proc
        self.slot_of_conn[id(ours)] = slot

    def remove_slot(self, slot: int) -> None:
        conn = self.conns.pop(slot)
        self.slot_of_conn.pop(id(conn), None)
        self.readers.pop(slot, None)
        self.sent.pop(slot, None)
        self._send_conn(conn, Quit())
        conn.close()
        self.procs.pop(slot).join(5)

    def submit(self, d: Dispatch) -> None:
        if d.slot not in self.conns:      # CPU slots start on first use
            self.add_slot(d.slot)
        self.sent.setdefault(d.slot, {})[d.job.index] = d
        self._send(d.slot, d)

    def withdraw(self, slot: int, index: int) -> None:
        self._send(slot, Withdraw(index))

    def stop(self, slot: int, how: StopHow) -> None:
        self._send(slot, Stop(how))

    def signal(self, slot: int, signum: int) -> None:
        self._send(slot, Signal(signum))

    def _send(self, slot: int, message: Union[Dispatch, Stop, Signal, Quit, Withdraw]) -> None:
        conn = self.conns.get(slot)
        if conn is not None:
            self._send_conn(conn, message)

    @staticmethod
    def _send_conn(conn, message: Union[Dispatch, Stop, Signal, Quit, Withdraw]) -> None:
        wire.send(conn, message)     # a consumer gone: its EOF is handled in receive

    def waitables(self) -> List:
        return list(self.conns.values())

    def owns(self, obj) -> bool:
        return id(obj) in self.slot_of_conn

    def receive(self, obj) -> List[Event]:
        slot = self.slot_of_conn[id(obj)]
        try:
            messages = self.readers[slot].messages()    # ([an Ended, its next's Started])
        except (EOFError, OSError):
            return [self._died(slot)]
        return [self._note(slot, event) for message in messages
                for event in (message if isinstance(message, list) else [message])]

    def _note(self, slot: int, event: Event) -> Event:
        if isinstance(event, Started):
            self.pids[slot] = event.pid
            self.started[slot] = event     # (its trace is made only if the slot dies)
        elif isinstance(event, Ended):
            self.pids.pop(event.outcome.slot, None)
            self.started.pop(event.outcome.slot, None)
            self.sent.get(slot, {}).pop(event.outcome.index, None)
        elif isinstance(event, Withdrawn):
            self.sent.get(slot, {}).pop(event.index, None)
        return event

    def _died(self, slot: int) -> SlotLost:
        """A consumer vanished (killed by someone): end its job's group and whatever
        else is left of the job (``spawn.end_leftovers``), drop the slot."""
        conn = self.conns.pop(slot)
        self.slot_of_conn.pop(id(conn), None)
        self.readers.pop(slot, None)
        conn.close()
        proc = self.procs.pop(slot)
        proc.join(1)
        pid = self.pids.pop(slot, None)
        start = self.started.pop(slot, None)
        trace = None if start is None else self._trace(start.proc, start.index)
        sent = self.sent.pop(slot, {})
        if pid is not None:
            spawn.signal_group(pid, signal.SIGKILL)
        # what left its group went to init with the slot gone; a job whose Started the
        # slot held back (it had just begun) is found by its INFO
        traces = [trace] if trace is not None else \
            [t for t in map(self._recorded, sent.values()) if t is not None]
        if traces:
            spawn.end_leftovers(traces, 0.0)
        return SlotLost(slot, f"its slot process died (exit code {proc.exitcode})")

    def _recorded(self, d: Dispatch) -> Optional[JobTrace]:
        """``d``'s job as its INFO records it, if that attempt started on this host."""
        proc = info_process(read_info(self.layout, d.job.index), d.attempt)
        return None if proc is None else self._trace(proc, d.job.index)

    def _trace(self, proc: Optional[JobProcess], index: int) -> JobTrace:
        """What tells job ``index``'s processes (``spawn.end_leftovers``)."""
        return JobTrace(proc, job_dir_variable(self.layout.folder(index)))

    def shutdown(self, running: Iterable[int]) -> None:
        """Kill the jobs of ``running`` slots (leaving by an exception), then stop every
        consumer, waiting for each up to the grace period and a margin."""
        for slot in running:
            self.stop(slot, StopHow.KILL)
        for slot in list(self.conns):
            self._send(slot, Quit())
        deadline = time.monotonic() + self.grace + 5
        for proc in self.procs.values():
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1)
        for conn in self.conns.values():
            conn.close()

