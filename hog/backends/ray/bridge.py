"""The Ray bridge: the process that is hog's Ray driver (``--backend ray``).

The runner forks it before Ray is ever imported and talks to it over one duplex
pipe, as it does with a consumer: down come ``ForSlot(slot, Dispatch | Stop)`` and
``Quit`` (exit); up go ``ClusterReady`` or ``ClusterRefused`` once, ``ClusterNodes``
when the cluster changes, and the backend events ``Started`` and ``Ended``
(``hog.model``).

Each job becomes one Ray task (``raynode.run_job``) asking for its GPUs, its named
resources and no CPU unless it asks (CPU-only jobs take one), with no retries by
Ray: hog decides about retries. The bridge records the attempt in its folder on hog's
machine (``hog.backends.attempt``) from what the task streams back (INFO at start,
output as it comes, INFO and the marker at the end). Ending a job that runs is a small task
on its node (``raynode.end_job``); one that has not started yet is cancelled in Ray.

If the runner goes away (its pipe reads EOF), every job is ended and recorded as
interrupted, and the bridge exits; if the bridge itself is killed, Ray ends its
tasks' workers and each job's guard ends the job's process group.
"""
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from hog.backends import wire
from hog.backends.attempt import Attempt
from hog.model import (
    ClusterNodes,
    ClusterReady,
    ClusterRefused,
    Dispatch,
    Ended,
    ForSlot,
    Outcome,
    Quit,
    Signal,
    Started,
    Status,
    Stop,
    StopHow,
)
from hog.signals import SignalFlags
from hog.state.jobdir import Layout, UnsafePath

if TYPE_CHECKING:   # ray: imported only in the bridge process, when it connects
    from ray import ObjectRefGenerator

WAIT_S = 0.05              # how long one ray.wait blocks while tasks are out
NODES_EVERY_S = 2.0        # how often the cluster's nodes are looked at
BACKPRESSURE = 32          # output items a task may have in flight to the bridge


@dataclass(frozen=True)
class RaySettings:
    address: Optional[str]                 # None: start a local Ray instance
    num_gpus: Optional[int] = None         # local instance: how many GPUs (None: Ray finds)
    visible: Optional[str] = None          # local instance: CUDA_VISIBLE_DEVICES for them
    log_path: str = ""                     # where Ray's own messages go


def demand(job) -> Dict[str, float]:
    """What a job asks Ray for: GPUs, CPUs (none for a GPU job unless it says CPU=n;
    one for a CPU-only job), and its named resources."""
    resources = dict(job.resources)
    need = {"GPU": float(job.gpus), "CPU": float(resources.pop("CPU", 0 if job.gpus else 1))}
    need.update(resources)
    return need


def task_options(job, name: str) -> dict:
    need = demand(job)
    gpus, cpus = need.pop("GPU"), need.pop("CPU")
    return dict(num_gpus=int(gpus) if gpus.is_integer() else gpus,
                num_cpus=int(cpus) if cpus.is_integer() else cpus, resources=need,
                max_retries=0, retry_exceptions=False, name=f"hog {name}",
                _generator_backpressure_num_objects=BACKPRESSURE)


def alive_nodes(ray) -> List[Dict[str, float]]:
    return sorted((dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")),
                  key=lambda r: sorted(r.items()))


@dataclass
class _Task:
    d: Dispatch
    gen: Optional["ObjectRefGenerator"]    # None for a task Ray refused
    kill: Optional[StopHow] = None        # how the runner stopped it, once asked
    info: Optional[dict] = None           # from the task's "started" item
    attempt: Optional[Attempt] = None     # its folder, once it started (or was lost)


class Bridge:
    def __init__(self, conn, layout: Layout, grace: float, ray):
        self.conn = conn
        self.layout = layout
        self.grace = grace
        self.ray = ray
        from hog.backends.ray import node as raynode  # imports ray: only in the bridge process
        self.run_job = ray.remote(raynode.run_job)
        self.end_job = ray.remote(raynode.end_job)
        self.signal_job = ray.remote(raynode.signal_job)
        self.tasks: Dict[int, _Task] = {}
        self.runner_gone = False
        self.exiting = False
        self.deadline: Optional[float] = None
        self.nodes: Optional[list] = None
        self.next_nodes = 0.0
        self.cwd = os.getcwd()

    # --------------------------------------------------------------- runner
    def send(self, message) -> None:
        if self.runner_gone:
            return
        if not wire.send(self.conn, message):
            self.runner_gone = True

    def _from_runner(self, timeout: float) -> None:
        """Handle what the runner sent, waiting at most ``timeout`` for the first."""
        while not self.runner_gone and self.conn.poll(timeout):
            timeout = 0
            try:
                message = wire.receive(self.conn)
            except (EOFError, OSError):
                self.runner_gone = True
                self._leave(StopHow.KILL)   # no job outlives hog
                return
            if isinstance(message, Quit):
                self._leave(None)
                continue
            if not isinstance(message, ForSlot):
                continue
            slot, what = message.slot, message.message
            if isinstance(what, Dispatch):
                self._submit(slot, what)
            elif isinstance(what, Stop):
                self._stop(slot, what.how)
            elif isinstance(what, Signal):
                self._signal(slot, what.signum)

    def _leave(self, how: Optional[StopHow]) -> None:
        self.exiting = True
        self.deadline = time.monotonic() + self.grace + 10
        if how is not None:
            for slot in list(self.tasks):
                self._stop(slot, how)

    # ----------------------------------------------------------------- loop
    def serve(self) -> None:
        ray = self.ray
        while True:
            self._from_runner(0 if self.tasks else 0.5)
            if self.exiting and (not self.tasks or (self.deadline is not None
                                                     and time.monotonic() > self.deadline)):
                return
            if self.tasks:
                gens = [t.gen for t in self.tasks.values()]
                ready, _ = ray.wait(gens, num_returns=1, timeout=WAIT_S, fetch_local=True)
                if ready and len(gens) > 1:
                    ready, _ = ray.wait(gens, num_returns=len(gens), timeout=0,
                                        fetch_local=True)
                by_gen = {id(t.gen): slot for slot, t in self.tasks.items()}
                for gen in ready:
                    self._advance(by_gen[id(gen)])
            if time.monotonic() >= self.next_nodes:
                self._look_at_nodes()

    def _look_at_nodes(self) -> None:
        self.next_nodes = time.monotonic() + NODES_EVERY_S
        try:
            nodes = alive_nodes(self.ray)
        except Exception:  # noqa: BLE001 - the cluster may be briefly unreachable
            return
        if nodes != self.nodes:
            self.nodes = nodes
            self.send(ClusterNodes(nodes))

    # ---------------------------------------------------------------- tasks
    def _submit(self, slot: int, d: Dispatch) -> None:
        job = d.job
        spec = dict(command=job.command, dispatch=d, folder=self.layout.folder(job.index),
                    cwd=job.cwd or self.cwd,
                    cwd_explicit=job.cwd is not None, timeout=job.timeout, grace=self.grace)
        try:
            gen = self.run_job.options(**task_options(job, d.name)).remote(spec)
        except Exception as e:  # noqa: BLE001 - e.g. options Ray refuses
            task = _Task(d, None)
            self._lost(task, Status.FAILED, f"Ray refused the task: {e}")
            return
        self.tasks[slot] = _Task(d, gen)

    def _stop(self, slot: int, how: StopHow) -> None:
        task = self.tasks.get(slot)
        if task is None:
            return
        first = task.kill is None
        if first or how is StopHow.KILL:
            task.kill = how
        if not first:
            return
        if task.info is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # ray
            where = NodeAffinitySchedulingStrategy(task.info["node"], soft=False)
            self.end_job.options(num_cpus=0, max_retries=0, scheduling_strategy=where,
                                 name="hog end job").remote(
                task.info["pid"], task.info["leader_start"], self.grace)
        else:
            self.ray.cancel(task.gen)    # not started: it never will

    def _signal(self, slot: int, signum: int) -> None:
        """Forward ``signum`` to the job's group on its node (a job not started yet has
        no group: nothing to do)."""
        task = self.tasks.get(slot)
        if task is None or task.info is None or task.kill is not None:
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # ray
        where = NodeAffinitySchedulingStrategy(task.info["node"], soft=False)
        self.signal_job.options(num_cpus=0, max_retries=0, scheduling_strategy=where,
                                name="hog signal job").remote(
            task.info["pid"], task.info["leader_start"], signum)

    def _advance(self, slot: int) -> None:
        """Take the next item of a task that has one ready."""
        ray = self.ray
        task = self.tasks[slot]
        assert task.gen is not None     # a task Ray refused is never in ``tasks``
        try:
            ref = next(task.gen)
        except StopIteration:
            self._lost(task, Status.FAILED, "its Ray task ended without a result")
            return
        try:
            kind, payload = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            self._lost(task, Status.INTERRUPTED, "cancelled in Ray" if task.info else
                       "cancelled in Ray before it started")
            return
        except ray.exceptions.RayError as e:
            self._lost(task, Status.FAILED, _describe(e, task))
            return
        if kind == "started":
            self._started(slot, task, payload)
        elif kind in ("out", "err") and task.attempt is not None:
            task.attempt.write(kind, payload)
        elif kind == "ended":
            self._ended(task, payload)

    def _started(self, slot: int, task: _Task, info: dict) -> None:
        d = task.d
        task.info = info
        try:
            task.attempt = Attempt.open(self.layout, d)
            task.attempt.open_output()
        except UnsafePath as e:         # a planted link: end the job, write nothing
            task.attempt = None
            self._stop(slot, StopHow.KILL)
            self._done(task, Attempt.refused(d, str(e)))
            return
        task.attempt.started(info["pid"], info["started"], host=info["host"], node=info["node"],
                             gpu_ids=info["gpu_ids"])
        self.send(Started(slot, d.job.index, info["pid"], info["started"], info["host"],
                          tuple(info["gpu_ids"])))

    def _ended(self, task: _Task, result: dict) -> None:
        if not result["started_ok"]:                       # the job could not start
            task.info = None
            self._lost(task, Status.FAILED, result["note"])
            return
        if task.kill is not None:
            status = task.kill.status
        elif result["status"] == "timeout":
            status = Status.TIMEOUT
        else:
            status = Status.SUCCEEDED if result["exit_code"] == 0 else Status.FAILED
        self._finish(task, status, result["exit_code"], result["signal"], result["ended"], "")

    def _lost(self, task: _Task, status: Status, why: str) -> None:
        """The task ended without a result of its own: record why, in its folder too."""
        if task.kill is not None:
            status = task.kill.status
        if task.attempt is None:
            try:
                task.attempt = Attempt.open(self.layout, task.d)
                task.attempt.open_output()
            except UnsafePath as e:
                self._done(task, Attempt.refused(task.d, str(e)))
                return
        self._done(task, task.attempt.ended_unrun(status, why))

    def _finish(self, task: _Task, status: Status, exit_code, sig, ended: float,
                note: str) -> None:
        assert task.attempt is not None
        self._done(task, task.attempt.finished(status, exit_code, sig, ended, note))

    def _done(self, task: _Task, outcome: Outcome) -> None:
        self.tasks.pop(task.d.slot, None)
        self.send(Ended(outcome))


def _describe(error: Exception, task: _Task) -> str:
    name = type(error).__name__
    where = f" on {task.info['host']} (node {task.info['node'][:12]})" if task.info else ""
    if name == "NodeDiedError":
        return f"its Ray node died{where}"
    if name in ("WorkerCrashedError", "OwnerDiedError", "LocalRayletDiedError"):
        return f"its Ray worker died{where} ({name})"
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"Ray: {name}{where}: {first[:300]}"


# ------------------------------------------------------------------- process
def connect(settings: RaySettings):
    """Import Ray and join the cluster (or start a local instance); returns ``ray``."""

    import ray  # ray: only in the bridge process, when it connects
    common: Dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING,
                  configure_logging=True)
    if settings.address is None:
        if settings.visible is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = settings.visible
        ray.init(address="local", num_gpus=settings.num_gpus, include_dashboard=False,
                 **common)
    else:
        probe(settings.address)
        ray.init(address=settings.address, **common)
    return ray


def probe(address: str, wait_s: float = 15.0) -> None:
    """Fail fast (Ray itself retries for minutes) when nothing listens at HOST:PORT."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return                          # "auto", or a form Ray resolves itself
    deadline = time.monotonic() + wait_s
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise ConnectionError(f"nothing answers at {address} "
                                      f"({e.strerror or e}); is the head node running?") \
                    from None
            time.sleep(1)


def _hint(log_path: str) -> str:
    """What Ray's log says that its exception does not."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(log_path) - 65536))
            tail = f.read()
    except OSError:
        return ""
    if b"InvalidAuthToken" in tail or b"Unauthenticated" in tail:
        return "; the cluster wants its authentication token: set RAY_AUTH_MODE=token and " \
               "the token (~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH) as on " \
               "its nodes"
    return ""


def bridge_main(conn, layout: Layout, grace: float, settings: RaySettings, close) -> None:
    """Entry point of the bridge process."""
    for other in close:      # the runner's end of our pipe: so EOF means "runner gone"
        other.close()
    flags = SignalFlags()    # terminal signals are the runner's business
    quiet = [signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2]
    flags.install(quiet)
    if settings.log_path:    # Ray's own messages go to a log, not over hog's display
        fd = os.open(settings.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        ray = connect(settings)
    except Exception as e:  # noqa: BLE001 - whatever Ray raises, the user gets one line
        text = (" ".join(str(e).split()) or type(e).__name__)[:600]     # one line
        wire.send(conn, ClusterRefused(text + _hint(settings.log_path)))
        return
    flags.install(quiet)     # ray.init installs its own SIGTERM handler
    bridge = Bridge(conn, layout, grace, ray)
    try:
        bridge.nodes = alive_nodes(ray)
        bridge.next_nodes = time.monotonic() + NODES_EVERY_S
        bridge.send(ClusterReady(bridge.nodes))
        bridge.serve()
    finally:
        try:
            ray.shutdown()
        except Exception:  # noqa: BLE001 - leaving anyway
            pass
