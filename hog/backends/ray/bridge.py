"""The Ray bridge: the process that is hog's Ray driver (``--backend ray``).

The runner forks it before Ray is ever imported and talks to it over one duplex
pipe, as it does with a consumer: down come ``ForSlot(slot, Dispatch | Stop)`` and
``Quit`` (exit); up go ``ClusterReady`` or ``ClusterRefused`` once, ``ClusterNodes``
when the cluster changes, and the backend events ``Started`` and ``Ended``
(``hog.messages``).

Each job becomes one Ray task (``raynode.run_job``) asking for its GPUs, its named
resources and no CPU unless it asks (CPU-only jobs take one), with no retries by
Ray: hog decides about retries. The bridge records the attempt in its folder on hog's
machine (``hog.backends.attempt``) from what the task streams back (INFO at start,
output as it comes, INFO and the marker at the end). Ending a job that runs is a small task
on its node (``raynode.end_job``); one that has not started yet is cancelled in Ray.

A write the disk refuses (full, read-only, the output directory gone) never ends the
job and never the bridge: the runner hears ``CannotWrite`` for that slot, and the
write is tried again with a backoff until it is done, or the slot is told to stop
(``hog.backends.ray.writes``), as the local backend's slot process does.

If the runner goes away (its pipe reads EOF), every job is ended and recorded as
interrupted, and the bridge exits; if the bridge itself is killed, Ray ends its
tasks' workers and each job's guard ends the job's process group.
"""
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, Optional

from hog.backends import wire
from hog.backends.attempt import Attempt
from hog.backends.ray.messages import ClusterNodes, ForSlot
from hog.backends.ray.resources import alive_nodes, task_options
from hog.backends.ray.writes import FolderWrites, OutputWrite
from hog.messages import CannotWrite, Dispatch, Ended, Quit, Signal, Started, Stop, StopHow
from hog.model import NO_USAGE, Outcome, Status, Usage
from hog.state.diskguard import check_present
from hog.state.jobdir import Layout, UnsafePath

if TYPE_CHECKING:   # ray: imported only in the bridge process, when it connects
    from ray import ObjectRefGenerator

WAIT_S = 0.05              # how long one ray.wait blocks while tasks are out
NODES_EVERY_S = 2.0        # how often the cluster's nodes are looked at


@dataclass
class _Task:
    d: Dispatch
    gen: Optional["ObjectRefGenerator"]    # None for a task Ray refused
    writes: FolderWrites                   # of its folder, while the disk refuses them
    kill: Optional[StopHow] = None        # how the runner stopped it, once asked
    info: Optional[dict] = None           # from the task's "started" item
    attempt: Optional[Attempt] = None     # its folder, once it started (or was lost)
    finishing: bool = False               # its ending is being recorded
    ending: Optional[Callable[[], Outcome]] = None   # its outcome, if the ending is not written
    outcome: Optional[Outcome] = None     # its outcome, once the ending is written
    done: bool = False                    # ``Ended`` was sent


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
            self._from_runner(self._idle_s())
            if self.exiting and (not self.tasks or (self.deadline is not None
                                                     and time.monotonic() > self.deadline)):
                return
            self._retry_writes()
            reading = {slot: t for slot, t in self.tasks.items() if not t.writes.waiting}
            if reading:
                gens = [t.gen for t in reading.values()]
                ready, _ = ray.wait(gens, num_returns=1, timeout=WAIT_S, fetch_local=True)
                if ready and len(gens) > 1:
                    ready, _ = ray.wait(gens, num_returns=len(gens), timeout=0,
                                        fetch_local=True)
                by_gen = {id(t.gen): slot for slot, t in reading.items()}
                for gen in ready:
                    self._advance(by_gen[id(gen)])
            if time.monotonic() >= self.next_nodes:
                self._look_at_nodes()

    def _idle_s(self) -> float:
        """How long to wait for the runner: not at all while a task's stream is read;
        until the next write to try again while every task waits for the disk."""
        if any(not t.writes.waiting for t in self.tasks.values()):
            return 0
        due = [t.writes.retry_at for t in self.tasks.values()]
        return min(0.5, max(0.0, min(due) - time.monotonic())) if due else 0.5

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
        writes = FolderWrites(slot, self.layout.state_dir, self.send)
        try:
            gen = self.run_job.options(**task_options(job, d.name)).remote(spec)
        except Exception as e:  # noqa: BLE001 - e.g. options Ray refuses
            task = _Task(d, None, writes)
            self._lost(task, Status.FAILED, f"Ray refused the task: {e}")
            return
        self.tasks[slot] = _Task(d, gen, writes)

    def _stop(self, slot: int, how: StopHow) -> None:
        task = self.tasks.get(slot)
        if task is None:
            return
        first = task.kill is None
        if first or how is StopHow.KILL:
            task.kill = how
        if task.writes.waiting:
            self._give_up(task)     # told to stop: what the disk refused is not waited for
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
        elif kind in ("out", "err"):
            self._write(task, OutputWrite(lambda: task.attempt, kind, payload))
        elif kind == "ended":
            self._ended(task, payload)

    def _started(self, slot: int, task: _Task, info: dict) -> None:
        d = task.d
        task.info = info
        self._open(task)
        self._write(task, lambda: _attempt(task).started(
            info["pid"], info["started"], host=info["host"], node=info["node"],
            gpu_ids=info["gpu_ids"]))
        if task.done:                   # refused: a planted link (the job is ended)
            return
        self.send(Started(slot, d.job.index, info["pid"], info["started"], info["host"],
                          tuple(info["gpu_ids"])))
        if task.writes.waiting:         # (the runner hears again: it still waits)
            self.send(CannotWrite(slot, task.writes.why))

    def _open(self, task: _Task) -> None:
        """Make the attempt's folder and its ``.OUT`` and ``.ERR`` (two writes)."""
        def folder() -> None:
            check_present(self.layout.state_dir)   # never recreate a removed output dir
            task.attempt = Attempt.open(self.layout, task.d)
        self._write(task, folder)
        self._write(task, lambda: _attempt(task).open_output())

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
        self._finish(task, status, result["exit_code"], result["signal"], result["ended"], "",
                     Usage.from_fields(result.get("usage")))

    def _lost(self, task: _Task, status: Status, why: str) -> None:
        """The task ended without a result of its own: record why, in its folder too."""
        if task.kill is not None:
            status = task.kill.status
        task.finishing = True
        if task.attempt is None and not task.writes.given_up:
            self._open(task)
        now = time.time()
        self._end(task, lambda: _attempt(task).ended_unrun(status, why, ended=now),
                  lambda: _unwritten(task, status, None, None, now, why))

    def _finish(self, task: _Task, status: Status, exit_code, sig, ended: float,
                note: str, usage: Usage = NO_USAGE) -> None:
        self._end(task, lambda: _attempt(task).finished(status, exit_code, sig, ended, note,
                                                        usage=usage),
                  lambda: _unwritten(task, status, exit_code, sig, ended, note, usage))

    def _end(self, task: _Task, write: Callable[[], Outcome],
             unwritten: Callable[[], Outcome]) -> None:
        """The attempt's last writes (final INFO, marker), then ``Ended``: once they are
        written, or with the outcome as it is (``unwritten``) once they are given up."""
        task.finishing = True
        if task.done:
            return
        if task.writes.given_up:
            self._done(task, unwritten())
            return
        task.ending = unwritten

        def last() -> None:
            task.outcome = write()
        self._write(task, last)

    def _done(self, task: _Task, outcome: Outcome) -> None:
        if task.done:
            return
        task.done = True
        if self.tasks.get(task.d.slot) is task:
            del self.tasks[task.d.slot]
        self.send(Ended(outcome))

    # ------------------------------------------------ writes the disk refuses
    def _write(self, task: _Task, write: Callable[[], None]) -> None:
        """``write`` (to ``task``'s folder), after any the disk refused before it."""
        if task.done:
            return
        try:
            self._after(task, task.writes.add(write, self._stopping(task)))
        except UnsafePath as e:         # a planted link: end the job, write nothing
            self._refuse(task, str(e))

    def _retry_writes(self) -> None:
        now = time.monotonic()
        for task in list(self.tasks.values()):
            if task.writes.due(now):
                try:
                    self._after(task, task.writes.flush(self._stopping(task)))
                except UnsafePath as e:
                    self._refuse(task, str(e))

    def _stopping(self, task: _Task) -> bool:
        return task.kill is not None or self.runner_gone

    def _after(self, task: _Task, going: bool) -> None:
        """After ``task``'s writes were tried: given up (``going`` False), or all made,
        its ending among them (then reported)."""
        if not going:
            self._give_up(task)
        elif not task.writes.waiting and task.outcome is not None:
            self._done(task, task.outcome)

    def _give_up(self, task: _Task) -> None:
        """Write nothing more of ``task`` (its outcome is reported as it is)."""
        task.writes.give_up()
        _let_go(task)
        if task.ending is not None:
            self._done(task, task.ending())

    def _refuse(self, task: _Task, why: str) -> None:
        task.writes.give_up()
        _let_go(task)
        task.attempt = None
        if not task.finishing:
            self._stop(task.d.slot, StopHow.KILL)
        self._done(task, Attempt.refused(task.d, why))


def _let_go(task: _Task) -> None:
    """Close what ``task``'s attempt holds open (its streams, folder and lock)."""
    if task.attempt is not None:
        task.attempt.close_output()
        task.attempt.folder.close()
        task.attempt.release()


def _attempt(task: _Task) -> Attempt:
    assert task.attempt is not None     # (its folder is made by the write before)
    return task.attempt


def _unwritten(task: _Task, status: Status, exit_code, sig, ended: float,
               note: str, usage: Usage = NO_USAGE) -> Outcome:
    """The outcome of ``task`` whose ending could not be written."""
    if task.attempt is not None:
        return task.attempt.outcome(status, exit_code, sig, ended, note, usage=usage)
    d = task.d
    return Outcome(index=d.job.index, name=d.name, slot=d.slot, status=status,
                   exit_code=exit_code, signal=sig, started=ended, ended=ended,
                   attempt=d.attempt, note=note or "its folder could not be written")


def _describe(error: Exception, task: _Task) -> str:
    name = type(error).__name__
    where = f" on {task.info['host']} (node {task.info['node'][:12]})" if task.info else ""
    if name == "NodeDiedError":
        return f"its Ray node died{where}"
    if name in ("WorkerCrashedError", "OwnerDiedError", "LocalRayletDiedError"):
        return f"its Ray worker died{where} ({name})"
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"Ray: {name}{where}: {first[:300]}"
