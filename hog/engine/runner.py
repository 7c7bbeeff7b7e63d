"""The runner: producer -> queue -> store -> scheduler -> consumers -> job folders.

The main process owns the loop. The producer's jobs are written to the store (the
single source of truth) as they arrive; the scheduler takes queued jobs from the
store in order, each claim is committed before the job is sent to its slot's
consumer, and every outcome is committed when it comes back. The loop blocks on
its pipes, a signal wake-up fd and a 0.5 s tick for requests made from other
shells (``hog add``, ``stop``, ``kill``, ``gpus``); nothing polls on the job path.
"""
import os
import pickle
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import replace
from typing import Deque, Dict, List, Optional, Tuple

import multiprocess
from multiprocess.connection import wait

from hog.backends import make_backend
from hog.backends.attempt import Attempt
from hog.backends.base import LocalCapacity, Resizable
from hog.config import RunConfig, slots_for, source_key
from hog.views.display import Progress, Running, make_display, summary
from hog.errors import UsageError
from hog.signals import SignalFlags
from hog.state.jobdir import Layout, folder_verdict, read_info
from hog.model import (BackendFailed, Dispatch, Ended, Event, Job, JobMsg, Outcome, SlotLost,
                       SourceFailed, SourceTotal, Started, Status, StopHow)
from hog.sources.producer import producer_main
from hog.placement import MEMORY
from hog.state.store import HEARTBEAT_S, JobRow, Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INT, EXIT_TERM = 0, 1, 2, 130, 143
TICK_S = 0.5
INGEST_BATCH = 500
READY_AHEAD = 64
LOOKAHEAD = 1000    # jobs read from the source ahead of the slots (an endless yielder is fine)


class Runner:
    def __init__(self, config: RunConfig):
        self.cfg = config
        self.layout = Layout(os.path.abspath(config.output_dir), config.prefix)
        self.ctx = multiprocess.get_context("fork")
        self.flags = SignalFlags()
        self.backend, self.sched = make_backend(config, self.ctx, self.layout, self.flags)
        self.memory_known = bool(config.gpu_memory)
        self.monitor = None
        self.registry = None
        self.waiting_deps: set = set()
        self.progress = Progress(slots=list(config.slots), layout=self.layout,
                                 title=config.output_dir)
        self.fatal = ""
        self.running: Dict[int, Dispatch] = {}
        self.claimed: List[Dispatch] = []   # claimed this turn, sent once committed
        self.pids: Dict[int, int] = {}
        self.ready: Deque[Tuple[JobRow, Job]] = deque()
        self.not_here: set = set()      # queued jobs this runner can never run
        self.cancelling: set = set()
        self.producer = None
        self.source_done = config.source is None
        self.source_error = ""
        self.producer_exited = False
        self.started_any = False
        self.stopping = False       # first Ctrl-C / hog stop: start nothing new
        self.killing = False        # second Ctrl-C / SIGTERM / hog stop --now
        self.stop_reason = ""
        self.exit_signal = 0
        self.detached = False
        self.resume = False
        self.ingested = [0, 0, 0]   # added, queued again, skipped (succeeded)
        self.received = 0           # jobs taken from the producer
        self.source_total: Optional[int] = None   # jobs in the source, once counted
        self.base_total = 0         # finished + running + queued in the store
        self.ahead = 0              # queued jobs in the store not yet started (estimate)
        self.next_tick = 0.0
        self._others_running = False
        self.next_heartbeat = 0.0
        self.data_version = None
        self.hooks = None

    # ------------------------------------------------------------ set-up
    def _open_store(self) -> None:
        root = self.layout.root
        if self.cfg.fresh:
            self._move_aside()
        had_store = os.path.exists(os.path.join(self.layout.state_dir, "hog.sqlite"))
        self.created_root = not os.path.exists(root)
        if not had_store and os.path.isdir(root):
            existing = self.layout.existing_job_folders()
            if existing:
                raise UsageError(f"{self.cfg.output_dir}/ holds job folders ({', '.join(existing)}"
                                 f", ...) but no hog queue; nothing is overwritten: use another "
                                 f"--output_dir, or --fresh to move that one aside")
        try:
            self.layout.prepare_root()
        except OSError as e:
            raise UsageError(f"--output_dir {self.cfg.output_dir}: cannot be used as a "
                             f"directory ({e.strerror})") from None
        self.store = Store(self.layout.state_dir)
        recovered = self.store.recover(self._folder_state)
        with self.store.transaction():
            live = self.store.live_runners()
            self._check_sweep(live)
            self.runner_id = self.store.register_runner(self.backend.label())
        self.joiner = bool(live)
        if recovered:
            again = sum(1 for _, s in recovered if s == "interrupted")
            self.notices.append(
                f"recovered {len(recovered)} job(s) left running by a runner that died: "
                f"{again} queued again, {len(recovered) - again} had succeeded")
        if self.joiner:
            self.source_done = True
            self.notices.append(f"joining {len(live)} active runner(s) on this queue")

    def _folder_state(self, row: JobRow):
        verdict = folder_verdict(self.layout, row.id)
        return None if verdict is None else (verdict, read_info(self.layout, row.id))

    def _check_sweep(self, live) -> None:
        """Decide whether this run starts a sweep, resumes it, or joins it."""
        prefix = self.store.meta("prefix")
        if prefix is not None and prefix != self.cfg.prefix:
            raise UsageError(f"{self.cfg.output_dir}/ holds a sweep with --prefix {prefix!r}; "
                             f"use the same prefix, or another --output_dir")
        self.store.set_meta("prefix", self.cfg.prefix)
        if self.cfg.source is None:
            return
        mine = source_key(self.cfg.source)
        theirs = self.store.meta("source")
        if theirs is None:
            self.store.set_meta("source", mine)
        elif theirs != mine:
            counts = self.store.counts()
            done = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            raise UsageError(
                f"{self.cfg.output_dir}/ holds another sweep ({theirs.split(':', 1)[1]}: "
                f"{done}); to run {self.cfg.source.path} use another --output_dir, or --fresh "
                f"to move the old one aside; to queue its jobs in this sweep: "
                f"hog add {self.cfg.output_dir} --job_file {self.cfg.source.path}")
        else:
            self.resume = not live
        if not live:
            self.store.set_meta("ingest_done", "0")
            if self.cfg.source.kind == "watch":   # scripts left in running/ run again
                self.store.retry(r.id for r in self.store.rows_with_status("interrupted"))

    def _move_aside(self) -> None:
        root = self.layout.root
        if not os.path.exists(root) or not os.listdir(root):
            return
        db = os.path.join(self.layout.state_dir, "hog.sqlite")
        if os.path.exists(db):
            probe = Store(self.layout.state_dir, create=False)
            try:
                if probe.live_runners():
                    raise UsageError(f"--fresh: a runner is still active on "
                                     f"{self.cfg.output_dir}/; stop it first (hog stop)")
            finally:
                probe.close()
        aside = f"{root}.old-{time.strftime('%Y%m%d-%H%M%S')}"
        n = 1
        while os.path.exists(aside):
            aside = f"{root}.old-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
            n += 1
        os.rename(root, aside)
        self.notices.append(f"--fresh: moved the previous {self.cfg.output_dir}/ to {aside}")

    def _learn_gpu_memory(self) -> None:
        """GPU memory totals from nvidia-smi, asked once, when a job first needs them."""
        self.memory_known = True
        if not isinstance(self.sched, LocalCapacity):    # Ray turns memory= jobs down
            return
        from hog.gpus.discovery import query_gpus
        for g in query_gpus() or []:
            if g.memory_total_mib:
                for key in (g.index, g.uuid):
                    if key in self.cfg.slots:
                        self.sched.set_gpu_memory(key, g.memory_total_mib * 2 ** 20)

    def _start_processes(self) -> None:
        if not self.joiner and self.cfg.source is not None:
            self.queue = self.ctx.Queue(maxsize=max(64, 4 * len(self.cfg.slots)))
            self.producer = self.ctx.Process(target=producer_main, name="hog-producer",
                                             args=(self.cfg.source, self.queue))
            self.producer.start()
        self.backend.start()
        if self.cfg.min_free_memory is not None or self.cfg.exclusive:
            from hog.gpus.monitor import GpuMonitor
            self.monitor = GpuMonitor(self.cfg.min_free_memory, self.cfg.exclusive)
            self.monitor.start()
            if self.monitor.error:
                raise UsageError(f"--min_free_memory/--exclusive need nvidia-smi: "
                                 f"{self.monitor.error}")
            if isinstance(self.sched, LocalCapacity):    # --backend ray refuses these options
                self.sched.set_unavailable(self.monitor.unavailable)
        from hog.engine.neighbours import Registry   # every runner says when it runs jobs,
        self.registry = Registry()          # for those started with --wait_for_running
        self.registry.update(0)
        if self.cfg.wait_for_running:
            self._note_others_running(self.registry.others_running())

    # ------------------------------------------------------------- loop
    def run(self) -> int:
        self.notices: List[str] = []
        self._open_store()
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self.flags.install([signal.SIGINT, signal.SIGTERM, signal.SIGHUP], wake_w.fileno())
        try:
            self._start_processes()
            self.display = make_display(self.progress, self.cfg.display)
            self.display.start()
            if self.cfg.on_job_end or self.cfg.on_finish:
                from hog.engine import hooks
                self.hooks = hooks.start_hooks(self.cfg, self.layout,
                                               lambda text: self.display.message(text))
            for note in self.notices:
                self.display.message(note)
            self.data_version = self.store.data_version()
            self._refresh_total()
            ready: list = []
            while True:
                # One write transaction per turn: what the slots reported, requests from
                # other shells, new jobs and the claims of the jobs to start; committed
                # before any of those jobs is sent to its slot.
                with self.store.batch():
                    self._handle_ready(ready)
                    if time.monotonic() >= self.next_tick:
                        self._tick()
                    self._ingest()
                    self._fill()
                self._send_claimed()
                if self._finished():
                    break
                self.display.idle()
                timeout = max(0.0, self.next_tick - time.monotonic())
                ready = wait(self._waitables(wake_r), timeout)
                self._handle_signals(wake_r)
        finally:
            self._shutdown()
            signal.set_wakeup_fd(-1)
        code = self._report()
        if self.hooks is not None:
            from hog.engine import hooks
            self.hooks.close(hooks.sweep_variables(self.progress, self.layout, code))
        return code

    def _handle_ready(self, ready: list) -> None:
        for obj in ready:
            if self.producer is not None and obj is self.producer.sentinel:
                self.producer_exited = True
                self.producer.join(0)
            elif self.backend.owns(obj):
                for event in self.backend.receive(obj):
                    self._on_event(event)

    def _send_claimed(self) -> None:
        """Send the jobs claimed this turn to their slots (the claims are committed)."""
        for d in self.claimed:
            self.backend.submit(d)
        self.claimed.clear()

    def _waitables(self, wake_r) -> list:
        objs = [wake_r] + self.backend.waitables()
        if self.producer is not None and not self.producer_exited:
            objs.append(self.producer.sentinel)
        if self._may_ingest():
            objs.append(self.queue._reader)
        return objs

    def _finished(self) -> bool:
        if self.running:
            return False
        if self.stopping:
            return True
        if self.cfg.keep_alive or not self.source_done or self.ready:
            return False
        if self.joiner and self.store.meta("ingest_done") != "1" and self._ingester_alive():
            return False
        return not self._queued_here()

    def _ingester_alive(self) -> bool:
        return any(r.id != self.runner_id for r in self.store.live_runners())

    def _queued_here(self) -> bool:
        rows = self.store.queued(READY_AHEAD + len(self.not_here))
        return any(r.id not in self.not_here for r in rows)

    # ---------------------------------------------------------- ingest
    def _ingest(self) -> None:
        """Move jobs the producer has ready into the store, a batch at a time, staying at
        most LOOKAHEAD jobs ahead of the slots."""
        if not self._may_ingest():
            return
        batch: List[Job] = []
        ended = None
        # While slots are idle, hand the first jobs over at once; then take big batches.
        limit = INGEST_BATCH if self.running else max(4, 2 * self.sched.room())
        while len(batch) < limit:
            if not self.queue._reader.poll():
                if self.producer_exited and not batch:
                    ended = f"the job source process died (exit code {self.producer.exitcode})"
                break
            message = pickle.loads(self.queue.get())
            if isinstance(message, JobMsg):
                batch.append(message.job)
            elif isinstance(message, SourceTotal):
                self.source_total = message.total
            else:
                ended = message.text if isinstance(message, SourceFailed) else ""
                break
        self.received += len(batch)
        if batch and self.cfg.source.kind == "watch":
            self.store.add(batch)           # scripts are new jobs, not source positions
            self.base_total += len(batch)
            self.ahead += len(batch)
            self.ready.clear()
        elif batch:
            counts = self.store.ingest(batch, self.resume, self.runner_id)
            self.ingested = [a + b for a, b in zip(self.ingested, counts)]
            self.base_total += counts[0] + counts[1]
            self.ahead += counts[0] + counts[1]
            self.ready.clear()      # new jobs may come before what we fetched
        self._show_total()
        if ended is not None:
            self._source_ended(ended)
            self._refresh_total()

    def _may_ingest(self) -> bool:
        """Read on while fewer than LOOKAHEAD jobs wait, or while nothing runs (so a queue
        whose head cannot start yet never stalls the source)."""
        if self.producer is None or self.source_done:
            return False
        return self.ahead < LOOKAHEAD or not self.running

    def _show_total(self) -> None:
        unread = 0
        if self.source_total is not None and not self.source_done:
            unread = max(0, self.source_total - self.received)
        self.progress.total = self.base_total + unread

    def _source_ended(self, error: str) -> None:
        self.source_done = True
        self.source_error = error
        if not error:
            self.store.set_meta("ingest_done", "1")
        added, again, skipped = self.ingested
        if self.resume and (again or skipped):
            self.display.message(f"resuming {self.cfg.output_dir}/: skipped {skipped} job(s) "
                                 f"that already succeeded; {again} queued again (failed, "
                                 f"interrupted or changed), {added} new")

    # ------------------------------------------------------------ fill
    def _refill(self) -> None:
        skip = self.not_here
        rows = self.store.queued(READY_AHEAD + len(skip) + len(self.waiting_deps))
        self.ready.extend((r, r.job()) for r in rows if r.id not in skip)

    def _fill(self) -> None:
        """Start queued jobs while there is room and the planner finds a place."""
        if self.stopping or self._others_running:
            return
        while self.sched.has_room():
            if not self.ready:
                self._refill()
                if not self.ready:
                    return
            entries = {job.index: (row, job) for row, job in self.ready}
            placements = self.sched.schedule([job for _, job in entries.values()],
                                             lambda job: self._may_start(*entries[job.index]))
            if not placements:
                return
            by_id = {job.index: (row, job) for row, job in self.ready}
            for p in placements:
                row, job = by_id[p.job_id]
                self.ready.remove((row, job))
                gpus = ",".join(p.gpu_ids)
                attempt = self.store.claim(row.id, row.attempt, self.runner_id, p.slot, gpus)
                self.ahead = max(0, self.ahead - 1)
                if attempt is None:     # another runner took it, or it was cancelled
                    self.sched.release(p.job_id, ran=False)
                    continue
                name = job.name or self.layout.folder_name(job.index)
                self._dispatch(Dispatch(job=job, slot=p.slot, gpu_ids=p.gpu_ids, name=name,
                                        attempt=attempt))

    def _may_start(self, row: JobRow, job: Job) -> bool:
        """Asked by the scheduler about a job it would consider (lazily: not once there
        is no room left for it): not impossible here, dependencies met."""
        if MEMORY in dict(job.resources) and not self.memory_known:
            self._learn_gpu_memory()
        return self._startable(row, job)

    def _startable(self, row: JobRow, job: Job) -> bool:
        """False (and the job dealt with) if it can never run here or its dependencies
        failed; False while its dependencies are still running."""
        why = self.sched.never_fits(job)
        if why:
            self.ready.remove((row, job))
            self._cannot_run_here(row, job, job.name or self.layout.folder_name(job.index), why)
            return False
        if job.after:
            state = self._dependencies(job)
            if state == "wait":
                self.waiting_deps.add(job.index)
                return False
            self.waiting_deps.discard(job.index)
            if state != "ok":
                self.ready.remove((row, job))
                self._skip(row, job, state)
                return False
        return True

    def _dependencies(self, job: Job) -> str:
        """'ok' when every job named in ``after`` succeeded, 'wait' while one may still,
        else why this job will not run."""
        waiting = False
        for name in job.after:
            rows = self.store.by_name(name)
            if not rows:
                return f"it is after {name!r}, but no job is named {name!r}"
            for r in rows:
                if r.status == "succeeded":
                    continue
                if r.status in ("queued", "running"):
                    waiting = True
                else:
                    return f"its dependency {name} ended {r.status}"
        return "wait" if waiting else "ok"

    def _skip(self, row: JobRow, job: Job, why: str) -> None:
        self._end_unrun(row, job, Status.SKIPPED, why, "skipped: " + why)

    def _end_unrun(self, row: JobRow, job: Job, status: Status, why: str, message: str) -> None:
        """Record a job that ends without running (skipped, unschedulable)."""
        name = job.name or self.layout.folder_name(job.index)
        self.display.message(f"{name} ({job.where}) {message}")
        now = time.time()
        d = Dispatch(job=job, slot=-1, gpu_ids=(), name=name, attempt=row.attempt or 1)
        self.store.set_status(row.id, status, why)
        self.ahead = max(0, self.ahead - 1)
        outcome = self._write_folder_without_consumer(d, status, now, now, None,
                                                      f"{name}: {why}", note=why)
        self._account(replace(outcome, attempt=1))    # (counted as a first attempt, as ever)

    def _cannot_run_here(self, row: JobRow, job: Job, name: str, why: str) -> None:
        self.not_here.add(row.id)
        if len(self.store.live_runners()) > 1:
            self.display.message(f"{name} {why}; leaving it to another runner")
            return
        self._end_unrun(row, job, Status.UNSCHEDULABLE, why, f"{why}; it will not run")

    def _dispatch(self, d: Dispatch) -> None:
        if d.slot >= len(self.progress.slots):  # Ray: slots are taken as jobs are handed over
            self.progress.slots = self.sched.slot_gpus()
        self.running[d.slot] = d
        if self.registry is not None:
            self.registry.update(len(self.running))
        self.started_any = True
        self.progress.running[d.slot] = Running(d.name, ",".join(d.gpu_ids), time.time(),
                                                d.job.index)
        self.claimed.append(d)

    # ------------------------------------------------- backend events
    def _on_event(self, event: Event) -> None:
        if isinstance(event, Started):
            self.sched.started(event.index)
            slot, pid, started, chosen = event.slot, event.pid, event.started, event.gpu_ids
            self.pids[slot] = pid
            gpus = ",".join(self.running[slot].gpu_ids if chosen is None else chosen)
            self.store.started(event.index, pid, started, gpus=None if chosen is None else gpus)
            if self.monitor is not None:
                self.monitor.ours = frozenset(self.pids.values())
            r = self.progress.running.get(slot)
            if r is not None:
                r.started = started
                r.gpus = gpus
            self.display.job_started(slot, self.running[slot].name, gpus, pid)
        elif isinstance(event, Ended):
            self._ended(event.outcome)
        elif isinstance(event, SlotLost):
            self._consumer_died(event.slot, event.why)
        elif isinstance(event, BackendFailed) and not self.fatal:
            self.fatal = event.why
            self.display.message(event.why)
            self._drain(event.why)

    def _ended(self, outcome: Outcome) -> None:
        d = self.running.pop(outcome.slot, None)
        self.pids.pop(outcome.slot, None)
        self.cancelling.discard(outcome.index)
        retry = d is not None and outcome.status in (Status.FAILED, Status.TIMEOUT) \
            and outcome.attempt <= d.job.retries and not self.killing
        self.store.ended(outcome.index, outcome.status, outcome.exit_code, outcome.signal,
                         outcome.started, outcome.ended, outcome.note, requeue=retry)
        gone = self.sched.release(outcome.index)
        if gone and isinstance(self.backend, Resizable):
            for slot in gone:
                self.backend.remove_slot(slot)
        # (the registry hears "idle" on the tick: a slot handed its next job at once must
        # not cost two file writes per job)
        if self.monitor is not None:
            self.monitor.ours = frozenset(self.pids.values())
        self.progress.running.pop(outcome.slot, None)
        if retry:
            self.ahead += 1
            self.ready.clear()
            self.display.message(f"{outcome.name} attempt {outcome.attempt} ended "
                                 f"{outcome.status.value}; retrying")
            return
        self._account(outcome)

    def _account(self, outcome: Outcome) -> None:
        if self.cfg.source is not None and self.cfg.source.kind == "watch":
            from hog.sources.watch import finish
            finish(self.cfg.source.path, outcome, self.layout.out_path(outcome.index),
                   self.layout.err_path(outcome.index))
        self.progress.record(outcome)
        self.display.job_ended(outcome)
        if self.hooks is not None:
            from hog.engine.hooks import job_variables
            self.hooks.job_ended(outcome.name, job_variables(outcome, self.layout, self.progress))

    def _consumer_died(self, slot: int, why: str) -> None:
        """A slot's executor vanished (the backend ended its job): record it, replace it."""
        d = self.running.get(slot)
        if d is not None:
            pid = self.pids.get(slot)
            started = self.progress.running[slot].started
            now = time.time()
            self._ended(self._write_folder_without_consumer(d, Status.INTERRUPTED, started, now,
                                                            pid, why))
        if not (self.killing or self.stopping) and isinstance(self.backend, Resizable) \
                and isinstance(self.sched, LocalCapacity) and self.sched.owns_slot(slot):
            self.display.message(f"slot {slot}: {why}; starting a new one")
            self.backend.add_slot(slot)

    def _write_folder_without_consumer(self, d: Dispatch, status: Status, started: float,
                                       ended: float, pid: Optional[int], why: str,
                                       note: Optional[str] = None) -> Outcome:
        return Attempt.reopen(self.layout, d, pid).ended_unrun(status, why, note=note,
                                                               started=started, ended=ended)

    # ------------------------------------------------------------ tick
    def _tick(self) -> None:
        """Every 0.5 s: requests from other shells, heartbeat, GPU checks."""
        now = time.monotonic()
        self.next_tick = now + TICK_S
        if self.monitor is not None and isinstance(self.sched, LocalCapacity) \
                and self.sched.set_unavailable(self.monitor.unavailable):
            busy = sorted(g for g in self.monitor.unavailable if g in self.cfg.slots)
            self.display.message(f"GPU(s) in use by others, no new jobs there: "
                                 f"{','.join(busy) or 'none now'}")
        if self.registry is not None:
            self.registry.update(len(self.running))
        if self.cfg.wait_for_running:
            self._note_others_running(self.registry.others_running())
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + HEARTBEAT_S
            self.store.heartbeat(self.runner_id)
        version = self.store.data_version()
        if version == self.data_version:
            return
        self.data_version = version
        self.ready.clear()              # jobs added, cancelled or retried elsewhere
        self._refresh_total()
        request = self.store.pending_request(self.runner_id)
        if request == "kill" and not self.killing:
            self._kill_all("stopped by hog stop --now: running jobs were terminated")
        elif request == "drain" and not self.stopping:
            self._drain("stopped by hog stop: no new jobs were started")
        for job_id in self.store.cancel_requested(self.runner_id):
            for slot, d in self.running.items():
                if d.job.index == job_id and job_id not in self.cancelling:
                    self.cancelling.add(job_id)
                    self.backend.stop(slot, StopHow.CANCEL)
        spec = self.store.take_gpus_request(self.runner_id)
        if spec is not None:
            self._change_slots(spec)

    def _note_others_running(self, others: bool) -> None:
        if others == self._others_running:
            return
        self._others_running = others
        if others:
            self._say("--wait_for_running: another hog runner of yours is running jobs; "
                      "waiting")

    def _say(self, text: str) -> None:
        """A message for the user: shown now, or once the display has started."""
        if hasattr(self, "display"):
            self.display.message(text)
        else:
            self.notices.append(text)

    def _refresh_total(self) -> None:
        counts = self.store.counts()
        self.ahead = counts.get("queued", 0)
        self.base_total = self.progress.finished + len(self.running) + self.ahead
        self._show_total()

    def _change_slots(self, spec: str) -> None:
        if not isinstance(self.backend, Resizable) or not isinstance(self.sched, LocalCapacity):
            self.display.message("hog gpus: with --backend ray the cluster's nodes decide the "
                                 "GPUs (ray start --num-gpus); nothing changed")
            return
        try:
            wanted = slots_for(spec)
        except UsageError as e:
            self.display.message(f"hog gpus: {e}; keeping the current slots")
            return
        gone, added = self.sched.resize(wanted)
        for slot in gone:
            self.backend.remove_slot(slot)
        for slot in added:
            self.backend.add_slot(slot)
        self.progress.slots = self.sched.slot_gpus()
        self.store.heartbeat(self.runner_id, ",".join(self.progress.slots))
        self.display.message(f"slots are now --gpus {','.join(self.progress.slots)}")

    # ---------------------------------------------------------- signals
    def _handle_signals(self, wake_r) -> None:
        try:
            while wake_r.recv(64):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        ints = self.flags.count(signal.SIGINT)
        if self.flags.count(signal.SIGHUP) and not self.detached:
            self._lose_terminal()
        if self.flags.count(signal.SIGTERM) and not self.killing:
            self.exit_signal = signal.SIGTERM
            self._kill_all("stopped by SIGTERM: running jobs were terminated")
        elif ints >= 2 and not self.killing:
            self.exit_signal = signal.SIGINT
            self._kill_all("stopped by a second Ctrl-C: running jobs were terminated")
        elif ints == 1 and not self.stopping:
            self.exit_signal = signal.SIGINT
            self._drain("stopped by Ctrl-C: no new jobs were started")
            self.display.message(f"Ctrl-C: starting no new jobs; waiting for "
                                 f"{len(self.running)} running job(s) to finish. Press Ctrl-C "
                                 f"again to terminate them.")

    def _drain(self, reason: str) -> None:
        self.stopping = True
        self.stop_reason = reason
        self.progress.notice = reason

    def _kill_all(self, reason: str) -> None:
        self._drain(reason)
        self.killing = True
        for slot in list(self.running):
            self.backend.stop(slot, StopHow.KILL)

    def _lose_terminal(self) -> None:
        """SIGHUP: the terminal is gone. Keep running; send our output to a log."""
        self.detached = True
        log = os.path.join(self.layout.state_dir, "runner.log")
        try:
            self.display.stop()
        except Exception:  # noqa: BLE001 - the terminal may already be unusable
            pass
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        for std in (1, 2):
            os.dup2(fd, std)
        os.close(fd)
        self.display = make_display(self.progress, "plain" if self.cfg.display != "quiet"
                                    else "quiet")
        self.display.message("terminal hung up (SIGHUP); carrying on, output goes here")

    # --------------------------------------------------------- shut-down
    def _shutdown(self) -> None:
        # leaving by an exception with jobs running: they must not outlive us
        self.backend.shutdown(list(self.running))
        if self.monitor is not None:
            self.monitor.stop()
        if self.registry is not None:
            self.registry.close()
        if self.producer is not None:
            if self.producer.is_alive():
                self.producer.kill()
            self.producer.join(2)
            self.queue.close()
            self.queue.cancel_join_thread()
        if hasattr(self, "store"):
            if hasattr(self, "runner_id"):
                self.store.retire_runner(self.runner_id)
                from hog.state.results import save_results   # not needed before the first job
                save_results(self.store, self.layout)     # results.jsonl / .csv, atomically
            self.store.close()
        if hasattr(self, "display"):
            self.display.stop()

    def _remove_unused_output(self) -> None:
        """Nothing ran and nothing was queued: leave no empty output directory behind."""
        if self.created_root and not any(self._store_counts().values()):
            import shutil
            shutil.rmtree(self.layout.root, ignore_errors=True)

    def _store_counts(self) -> Dict[str, int]:
        store = Store(self.layout.state_dir)
        try:
            return store.counts()
        finally:
            store.close()

    def _report(self) -> int:
        p = self.progress
        self.display.idle()
        if self.source_error and not self.started_any and not p.finished:
            self._remove_unused_output()
            print(f"hog: error: {self.source_error}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        not_started = self._store_counts().get("queued", 0)
        text = summary(p, not_started, self.stop_reason, self.source_error)
        if not p.finished and not self.stop_reason and not self.source_error:
            text = f"hog: nothing left to do in {self.cfg.output_dir}/ " \
                   f"({self.ingested[2]} job(s) had already succeeded)" \
                if self.ingested[2] else "hog: no jobs to run"
        try:
            print(text, file=sys.stderr if p.failed or self.source_error else sys.stdout,
                  flush=True)
        except (OSError, ValueError):
            pass
        if self.exit_signal == signal.SIGTERM:
            return EXIT_TERM
        if self.exit_signal == signal.SIGINT:
            return EXIT_INT
        if self.source_error and not self.started_any:
            return EXIT_USAGE
        if p.failed or self.source_error or self.fatal:
            return EXIT_FAILED
        return EXIT_OK


def run(config: RunConfig) -> int:
    return Runner(config).run()
