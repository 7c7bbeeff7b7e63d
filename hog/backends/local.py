"""Backends: where dispatched jobs run. The runner decides what runs and when, and
records every transition in the store; a backend only executes and reports.

The interface is small. ``start(slots)``; ``add_slot``/``remove_slot``/``has_slot``;
``send(slot, message)`` with a ``Dispatch`` or a ``Stop``; ``waitables()``
for the runner's ``wait()`` and ``owns(obj)``; ``receive(obj)``, the events one
ready waitable brings; ``shutdown(kill)``. Events are the ``hog.model`` messages
``Started``, ``Ended``, ``SlotLost`` and ``BackendFailed``.

``LocalBackend`` (default) is one consumer process per slot on this machine; the
Ray backend is in ``hog.raybackend``.
"""
import signal
from typing import Dict, Iterable, List

from hog.backends import spawn, wire
from hog.backends.consumer import consumer_main
from hog.model import Ended, Event, Quit, SlotLost, Started, Stop, StopHow
from hog.state.jobdir import Layout

__all__ = ["LocalBackend", "make_backend"]


class LocalBackend:
    """One consumer process per slot, each with a duplex pipe to the runner."""

    local = True

    def __init__(self, ctx, layout: Layout, grace: float):
        self.ctx = ctx
        self.layout = layout
        self.grace = grace
        self.conns: Dict[int, object] = {}
        self.procs: Dict[int, object] = {}
        self.slot_of_conn: Dict[int, int] = {}
        self.pids: Dict[int, int] = {}

    def start(self, slots: Iterable[int]) -> None:
        for slot in slots:
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
        self.procs[slot] = proc
        self.slot_of_conn[id(ours)] = slot

    def remove_slot(self, slot: int) -> None:
        conn = self.conns.pop(slot)
        self.slot_of_conn.pop(id(conn), None)
        self._send_conn(conn, Quit())
        conn.close()
        self.procs.pop(slot).join(5)

    def send(self, slot: int, message) -> None:
        conn = self.conns.get(slot)
        if conn is not None:
            self._send_conn(conn, message)

    @staticmethod
    def _send_conn(conn, message) -> None:
        wire.send(conn, message)     # a consumer gone: its EOF is handled in receive

    def waitables(self) -> List:
        return list(self.conns.values())

    def owns(self, obj) -> bool:
        return id(obj) in self.slot_of_conn

    def receive(self, obj) -> List[Event]:
        slot = self.slot_of_conn[id(obj)]
        try:
            event = wire.receive(obj)
        except (EOFError, OSError):
            return [self._died(slot)]
        if isinstance(event, Started):
            self.pids[slot] = event.pid
        elif isinstance(event, Ended):
            self.pids.pop(event.outcome.slot, None)
        return [event]

    def _died(self, slot: int) -> SlotLost:
        """A consumer vanished (killed by someone): end its job's group, drop the slot."""
        conn = self.conns.pop(slot)
        self.slot_of_conn.pop(id(conn), None)
        conn.close()
        proc = self.procs.pop(slot)
        proc.join(1)
        pid = self.pids.pop(slot, None)
        if pid is not None:
            spawn.signal_group(pid, signal.SIGKILL)
        return SlotLost(slot, f"its slot process died (exit code {proc.exitcode})")

    def shutdown(self, running: Iterable[int]) -> None:
        """Kill the jobs of ``running`` slots (leaving by an exception), then stop every
        consumer, waiting for each up to the grace period and a margin."""
        import time
        for slot in running:
            self.send(slot, Stop(StopHow.KILL))
        for slot in list(self.conns):
            self.send(slot, Quit())
        deadline = time.monotonic() + self.grace + 5
        for proc in self.procs.values():
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1)
        for conn in self.conns.values():
            conn.close()


def make_backend(config, ctx, layout: Layout, flags):
    if getattr(config, "backend", "local") == "ray":
        from hog.backends.ray.backend import RayBackend
        return RayBackend(config, ctx, layout, flags)
    return LocalBackend(ctx, layout, config.grace)
