"""The Ray backend (``--backend ray``), on the runner's side.

Ray decides on which node, and with which GPU ids, a job runs; hog keeps the rest:
the order, dependencies, retries, timeouts, every store transition, and admission
(``hog.backends.ray.admission``). ``RayBackend`` starts the bridge process
(``hog.backends.ray.bridge``), the Ray driver, and turns its messages into backend
events (``hog.messages``).
"""
import os
import time
from typing import TYPE_CHECKING, Iterable, List, Optional

from hog.backends import wire
from hog.backends.ray.admission import RayAdmission
from hog.backends.ray.driver import RaySettings, bridge_main
from hog.backends.ray.messages import ClusterNodes, ClusterReady, ClusterRefused, ForSlot
from hog.errors import UsageError
from hog.messages import (
    BackendFailed,
    Dispatch,
    Ended,
    Event,
    Quit,
    Signal,
    SlotLost,
    Started,
    Stop,
    StopHow,
)
from hog.state.jobdir import Layout

if TYPE_CHECKING:   # the context's classes (multiprocess mirrors multiprocessing's)
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

__all__ = ["RayAdmission", "RayBackend", "settings_for"]

CONNECT_TIMEOUT_S = 180.0


def settings_for(config, layout: Layout) -> RaySettings:
    address = config.ray_address or os.environ.get("RAY_ADDRESS") or None
    gpus = getattr(config, "ray_gpus", None)
    return RaySettings(address=address, num_gpus=None if gpus is None else len(gpus),
                       visible=None if gpus is None else ",".join(gpus),
                       log_path=os.path.join(layout.state_dir, "ray.log"))


class RayBackend:
    """The runner's side of the bridge process: one pipe, events out of it."""

    def __init__(self, config, ctx, layout: Layout, flags):
        self.ctx = ctx
        self.layout = layout
        self.grace = config.grace
        self.flags = flags
        self.config = config
        self.admission = RayAdmission()
        self.conn: Optional["Connection"] = None
        self.proc: Optional["BaseProcess"] = None

    def label(self) -> str:
        return f"ray {self.config.ray_address or os.environ.get('RAY_ADDRESS') or '(local)'}"

    def start(self) -> None:
        """Start the bridge and wait until it has joined the cluster (or a signal came)."""
        settings = settings_for(self.config, self.layout)
        ours, theirs = self.ctx.Pipe(duplex=True)
        self.proc = proc = self.ctx.Process(target=bridge_main, name="hog-ray",
                                            args=(theirs, self.layout, self.grace, settings,
                                                  [ours]))
        proc.start()
        theirs.close()
        self.conn = conn = ours
        where = settings.address or "a local Ray instance"
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while time.monotonic() < deadline:
            if conn.poll(0.2):
                try:
                    message = wire.receive(conn)
                except (EOFError, OSError):
                    break
                if isinstance(message, ClusterReady):
                    self.admission.set_nodes(message.nodes)
                    return
                detail = message.text if isinstance(message, ClusterRefused) else message
                raise UsageError(f"--backend ray: cannot use {where}: {detail} "
                                 f"(Ray's messages: {settings.log_path})")
            if self.flags.counts:            # Ctrl-C or SIGTERM: the runner takes it from here
                return
        raise UsageError(f"--backend ray: no answer from {where} within "
                         f"{CONNECT_TIMEOUT_S:.0f}s (Ray's messages: {settings.log_path})")

    def submit(self, d: Dispatch) -> None:
        self._send(ForSlot(d.slot, d))

    def stop(self, slot: int, how: StopHow) -> None:
        self._send(ForSlot(slot, Stop(how)))

    def signal(self, slot: int, signum: int) -> None:
        self._send(ForSlot(slot, Signal(signum)))

    def _send(self, message) -> None:
        if self.conn is None:
            return
        wire.send(self.conn, message)    # the bridge gone: its EOF is handled in receive

    def waitables(self) -> List:
        return [self.conn] if self.conn is not None else []

    def owns(self, obj) -> bool:
        return obj is self.conn and obj is not None

    def receive(self, obj) -> List[Event]:
        try:
            message = wire.receive(self.conn)
        except (EOFError, OSError):
            return self._bridge_died()
        if isinstance(message, ClusterNodes):
            self.admission.set_nodes(message.nodes)
            return []
        if isinstance(message, (Started, Ended)):
            return [message]
        return []

    def _bridge_died(self) -> List[Event]:
        conn, proc = self.conn, self.proc
        assert conn is not None and proc is not None    # only a live bridge's pipe is waited on
        conn.close()
        self.conn = None
        proc.join(1)
        why = f"the Ray driver process (hog-ray) died (exit code {proc.exitcode})"
        events: List[Event] = [BackendFailed(f"{why}; no new jobs are started")]
        return events + [SlotLost(slot, why) for slot in self.admission.in_use()]

    def shutdown(self, running: Iterable[int]) -> None:
        """Kill the jobs of ``running`` slots, let the bridge record what ends and leave
        Ray (a local instance stops with it); it is killed if it takes too long."""
        proc = self.proc
        if proc is None:
            return
        for slot in running:
            self.stop(slot, StopHow.KILL)
        self._send(Quit())
        deadline = time.monotonic() + self.grace + 30
        while proc.is_alive() and time.monotonic() < deadline:
            if self.conn is not None and self.conn.poll(0.1):
                try:
                    self.conn.recv_bytes()      # keep its pipe flowing while it finishes
                except (EOFError, OSError):
                    self.conn.close()
                    self.conn = None
            elif self.conn is None:
                proc.join(0.1)
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        if self.conn is not None:
            self.conn.close()
            self.conn = None
