"""The Ray backend (``--backend ray``), on the runner's side.

Ray decides on which node, and with which GPU ids, a job runs. hog keeps the rest:
the order (priority, then submission), dependencies, retries, timeouts, every store
transition, and *admission*: which queued jobs are handed to Ray now.
``RayAdmission`` stands in for the local ``Scheduler``. It hands over jobs in queue
order while fewer than ``max_pending`` of those handed over have not started yet,
and never hands a job over while an earlier one that is still waiting asks for more
of a resource it wants (GPUs above all): Ray would give every GPU that frees up to
the narrower job, and a 2-GPU job in a stream of 1-GPU jobs would starve.

Each job handed over takes a virtual slot (0, 1, ... for GPU jobs, cpu0, cpu1, ...
for CPU-only ones) so that the runner, the store and the views keep their shape.
``RayBackend`` starts the bridge process (``hog.raybridge``), the Ray driver, and
turns its messages into backend events (see ``hog.backend``).
"""
import math
import os
import time
from typing import Dict, Iterable, List, Optional, Sequence

from hog.backends import wire
from hog.backends.ray.bridge import RaySettings, bridge_main, demand
from hog.errors import UsageError
from hog.model import (
    BackendFailed,
    ClusterNodes,
    ClusterReady,
    ClusterRefused,
    Ended,
    Event,
    ForSlot,
    Job,
    Quit,
    Slot,
    SlotLost,
    Started,
    Stop,
    StopHow,
)
from hog.placement import MEMORY, Placement, Verdicts
from hog.state.jobdir import Layout

CONNECT_TIMEOUT_S = 180.0
MIN_PENDING = 8
RESERVED = {"GPU": "ask for GPUs with gpus=N", "memory": None,
            "object_store_memory": "it is Ray's own"}


def _amounts(need: Dict[str, float]) -> str:
    return " ".join(f"{k}={v:g}" for k, v in sorted(need.items()) if v)


class RayAdmission:
    """Which queued jobs to hand to Ray now. Pure: no I/O, no Ray."""

    def __init__(self, max_pending: Optional[int] = None):
        self.nodes: List[Dict[str, float]] = []
        self.ready = False
        self.fixed_max_pending = max_pending
        self.pending: Dict[int, Job] = {}          # handed over, not started yet
        self.running: Dict[int, Job] = {}          # started (index -> job)
        self.slot_of: Dict[int, int] = {}
        self.slots: Dict[int, Slot] = {}           # virtual slots used so far
        self.free_gpu_slots: List[int] = []
        self.free_cpu_slots: List[int] = []
        self.retiring: set = set()
        self.unavailable: set = set()
        self._verdicts = Verdicts(self._never_fits)

    # ---------------------------------------------------------- capacity
    def set_nodes(self, nodes: Sequence[Dict[str, float]]) -> None:
        self.nodes = [dict(n) for n in nodes]
        self.ready = True
        self._verdicts.forget()

    @property
    def max_pending(self) -> int:
        if self.fixed_max_pending is not None:
            return self.fixed_max_pending
        gpus = sum(n.get("GPU", 0) for n in self.nodes)
        return max(MIN_PENDING, 2 * math.ceil(gpus))

    def _room(self, cpu: bool) -> int:
        """How many more GPU (or CPU-only) jobs may wait in Ray: the two kinds are counted
        apart, so CPU-only jobs waiting for CPUs never keep GPU jobs from idle GPUs."""
        if not self.ready:
            return 0
        waiting = sum(1 for job in self.pending.values() if (not job.gpus) == cpu)
        return max(0, self.max_pending - waiting)

    def has_room(self) -> bool:
        return bool(self._room(False) or self._room(True))

    @property
    def free(self) -> frozenset:
        """Truthy while GPU jobs may be handed over (the runner's test)."""
        return frozenset(range(self._room(False)))

    @property
    def cpu_free(self) -> list:
        return list(range(self._room(True)))

    def slot_gpus(self) -> List[str]:
        return ["ray" for i in sorted(self.slots) if i >= 0]

    def set_unavailable(self, gpu_ids) -> None:
        self.unavailable = set(gpu_ids)

    def set_gpu_memory(self, gpu: str, size: float) -> None:
        pass

    # ------------------------------------------------------------- rules
    def never_fits(self, job: Job) -> Optional[str]:
        return self._verdicts(job)

    def _never_fits(self, job: Job) -> Optional[str]:
        if job.gpu_ids:
            return "is pinned to GPU ids (gpu_ids); with --backend ray, Ray assigns the GPUs"
        for name, _ in job.resources:
            if name == MEMORY:
                return "declares memory= (GPU memory); with --backend ray, ask for a " \
                       "fraction of a GPU instead (gpus=0.5)"
            if name in RESERVED:
                return f"asks for the resource {name!r}, which Ray reserves" \
                       + (f"; {RESERVED[name]}" if RESERVED[name] else "")
        need = demand(job)
        if any(all(node.get(k, 0) >= v for k, v in need.items() if v) for node in self.nodes):
            return None
        widest = {k: max(n.get(k, 0) for n in self.nodes) for k, v in need.items() if v} \
            if self.nodes else {}
        has = _amounts(widest) or "nothing"
        return f"needs {_amounts(need) or 'nothing'} on one node; no node of the Ray " \
               f"cluster has that (the most any node has: {has})"

    def schedule(self, candidates: Iterable[Job]) -> List[Placement]:
        """Hand over what may go now among ``candidates`` (in queue order)."""
        placed: List[Placement] = []
        for job in candidates:
            if not self.has_room():
                break
            if not self._room(not job.gpus) or job.index in self.pending \
                    or job.index in self.running or self.never_fits(job) or self._held_back(job):
                continue
            placed.append(self._take(job))
        return placed

    def _held_back(self, job: Job) -> bool:
        """Does a job that waits in Ray ask for more of something this one wants?"""
        need = demand(job)
        for other in self.pending.values():
            theirs = demand(other)
            if any(v and theirs.get(k, 0) > v for k, v in need.items()):
                return True
        return False

    def _take(self, job: Job) -> Placement:
        cpu = not job.gpus
        pool = self.free_cpu_slots if cpu else self.free_gpu_slots
        if pool:
            pool.sort(reverse=not cpu)
            slot = pool.pop()
        else:
            used = [i for i in self.slots if (i < 0) == cpu]
            slot = (min(used, default=0) - 1) if cpu else (max(used, default=-1) + 1)
            self.slots[slot] = Slot(slot, "ray")
        self.pending[job.index] = job
        self.slot_of[job.index] = slot
        return Placement(job.index, (slot,), (), cpu=cpu)

    def started(self, job_id: int) -> None:
        job = self.pending.pop(job_id, None)
        if job is not None:
            self.running[job_id] = job

    def release(self, job_id: int, ran: bool = True) -> List[int]:
        self.pending.pop(job_id, None)
        self.running.pop(job_id, None)
        slot = self.slot_of.pop(job_id, None)
        if slot is not None:
            (self.free_cpu_slots if slot < 0 else self.free_gpu_slots).append(slot)
        return []

    def in_use(self) -> List[int]:
        return sorted(self.slot_of.values())


def settings_for(config, layout: Layout) -> RaySettings:
    address = config.ray_address or os.environ.get("RAY_ADDRESS") or None
    gpus = getattr(config, "ray_gpus", None)
    return RaySettings(address=address, num_gpus=None if gpus is None else len(gpus),
                       visible=None if gpus is None else ",".join(gpus),
                       log_path=os.path.join(layout.state_dir, "ray.log"))


class RayBackend:
    """The runner's side of the bridge process: one pipe, events out of it."""

    local = False

    def __init__(self, config, ctx, layout: Layout, flags):
        self.ctx = ctx
        self.layout = layout
        self.grace = config.grace
        self.flags = flags
        self.config = config
        self.admission = RayAdmission()
        self.conn = None
        self.proc = None

    def scheduler(self) -> RayAdmission:
        return self.admission

    def start(self, slots: Iterable[int]) -> None:
        """Start the bridge and wait until it has joined the cluster (or a signal came)."""
        settings = settings_for(self.config, self.layout)
        ours, theirs = self.ctx.Pipe(duplex=True)
        self.proc = self.ctx.Process(target=bridge_main, name="hog-ray",
                                     args=(theirs, self.layout, self.grace, settings, [ours]))
        self.proc.start()
        theirs.close()
        self.conn = ours
        where = settings.address or "a local Ray instance"
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.conn.poll(0.2):
                try:
                    message = wire.receive(self.conn)
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

    def has_slot(self, slot: int) -> bool:
        return True

    def add_slot(self, slot: int) -> None:
        pass

    def remove_slot(self, slot: int) -> None:
        pass

    def send(self, slot: int, message) -> None:
        self._send(ForSlot(slot, message))

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
        if isinstance(message, Started):
            self.admission.started(message.index)
            return [message]
        if isinstance(message, Ended):
            return [message]
        return []

    def _bridge_died(self) -> List[Event]:
        self.conn.close()
        self.conn = None
        self.proc.join(1)
        why = f"the Ray driver process (hog-ray) died (exit code {self.proc.exitcode})"
        return [BackendFailed(f"{why}; no new jobs are started")] + \
            [SlotLost(slot, why) for slot in self.admission.in_use()]

    def shutdown(self, running: Iterable[int]) -> None:
        """Kill the jobs of ``running`` slots, let the bridge record what ends and leave
        Ray (a local instance stops with it); it is killed if it takes too long."""
        if self.proc is None:
            return
        for slot in running:
            self.send(slot, Stop(StopHow.KILL))
        self._send(Quit())
        deadline = time.monotonic() + self.grace + 30
        while self.proc.is_alive() and time.monotonic() < deadline:
            if self.conn is not None and self.conn.poll(0.1):
                try:
                    self.conn.recv_bytes()      # keep its pipe flowing while it finishes
                except (EOFError, OSError):
                    self.conn.close()
                    self.conn = None
            elif self.conn is None:
                self.proc.join(0.1)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        if self.conn is not None:
            self.conn.close()
            self.conn = None
