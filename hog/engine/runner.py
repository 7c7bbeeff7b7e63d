"""The runner: producer -> queue -> store -> scheduler -> consumers -> job folders.

The main process owns the loop. The producer's jobs are written to the store (the
single source of truth) as they arrive; the scheduler takes queued jobs from the
store in order, each claim is committed before the job is sent to its slot's
consumer, and every outcome is committed when it comes back. The loop blocks on
its pipes, a signal wake-up fd and a 0.5 s tick for requests made from other
shells (``hog add``, ``stop``, ``kill``, ``gpus``); nothing polls on the job path.

``Runner`` builds the parts and runs the loop; the parts are functions over one
``RunState`` (``hog.engine.state``): ``sweep`` (which sweep this is), ``intake``
(source -> store), ``dispatch`` (store -> slots), ``outcomes`` (slots -> store),
``control`` (requests and signals) and ``progress`` (counters, summary, exit
code). ``step(now)`` is one turn of the loop, so a test can drive it with its own
clock; ``run()`` is set-up, then wait and step until done, then shut-down.
"""
import os
import signal
import socket
import sqlite3
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from hog.backends.factory import BackendFactory, make_backend
from hog.config import RunConfig
from hog.engine import (
    control,
    dispatch,
    gpuwatch,
    intake,
    outcomes,
    reserve,
    sweep,
    waiting,
    writable,
)
from hog.engine.context import fork_context
from hog.engine.detach import ParentReport
from hog.engine.poller import Poller
from hog.engine.progress import EXIT_USAGE, DisplayFactory, exit_code, summary
from hog.engine.state import READY_AHEAD, RunState
from hog.errors import WriteRefused
from hog.signals import SignalFlags
from hog.sources.producer import producer_main
from hog.state import gpulog, staging
from hog.state.diskguard import cannot_write
from hog.state.jobdir import Layout

if TYPE_CHECKING:
    from hog.state.resultfiles import ResultsSpool


HOLD_S = 0.05      # how long a turn's writes may wait for a later commit (engine.reserve)
GATHER_S = 0.001   # how long the loop leaves the slots unread while none waits on it
GATHER_SLOTS = 3   # ... with at least this many busy slots


def gather_s(st: RunState) -> float:
    """How long the loop may leave the slots' pipes unread after a turn (signals are
    still heard at once): ``GATHER_S`` while ``GATHER_SLOTS`` slots or more are busy and
    each holds its next job, handed ahead, so that what several slots report in that
    time costs one turn, not one each (work done just after a wake-up costs several
    times what it costs on a warm CPU: docs/performance.md). 0 when a busy slot may be
    waiting on the runner (it holds no next job), when the run is stopping, and with
    fewer busy slots: one slot's reports come one at a time, and a window would only
    add a wake-up to each (measured: no gain with two slots, a loss of throughput)."""
    if len(st.running) < GATHER_SLOTS or st.stopping:
        return 0.0
    return GATHER_S if all(st.next.get(slot) for slot in st.running) else 0.0


class Runner:
    """One run. ``make_display`` builds the display (the CLI and ``hog.run`` inject the
    views'); ``clock`` drives the tick; ``backend_factory`` and ``ctx`` (the process
    context for the producer and the slots) are there for tests that step the engine
    with an in-process backend and source."""

    def __init__(self, config: RunConfig, make_display: DisplayFactory,
                 clock: Callable[[], float] = time.monotonic,
                 backend_factory: BackendFactory = make_backend, ctx: Any = None):
        layout = Layout(os.path.abspath(config.output_dir), config.prefix)
        ctx = ctx if ctx is not None else fork_context()
        flags = SignalFlags()
        backend, sched = backend_factory(config, ctx, layout, flags)
        self.st = RunState(config, layout, ctx, flags, backend, sched, make_display)
        self.clock = clock
        self.st.health.clock = clock        # the quarantine rule's time: the loop's
        self.to_parent = ParentReport()     # --detach: the parent waits for a first job
        self._results: Optional["ResultsSpool"] = None
        self.looping = False                # in run(): writes may wait for a later commit

    # ------------------------------------------------------------ set-up
    def open(self) -> None:
        """Which sweep this is; the store, this runner's row in it (nothing started)."""
        try:
            sweep.open_store(self.st)
        except (OSError, sqlite3.Error) as e:
            why = cannot_write(e)
            if why is None:
                raise
            raise WriteRefused(f"--output_dir {self.st.cfg.output_dir}: cannot write there "
                               f"({why}); nothing was started") from None

    def start(self) -> None:
        """Start the producer, the slots, the monitor, the display and the hooks."""
        st = self.st
        self._start_processes()
        st.display = st.make_display(st.progress, st.cfg.display)
        st.display.start()
        if st.cfg.on_job_end or st.cfg.on_finish:
            from hog.engine import hooks  # a thread and a queue: only with hooks
            st.hooks = hooks.start_hooks(st.cfg, st.layout,
                                         lambda text: st.display.message(text))
        for note in st.notices:
            st.display.message(note)
        # (no data_version taken here: the first tick reads requests from other shells
        # whatever it is, so one made as this runner registered is not missed)
        intake.refresh_total(st)

    def _start_processes(self) -> None:
        st = self.st
        if not st.joiner and st.cfg.source is not None:
            st.queue = st.ctx.Queue(maxsize=max(64, 4 * len(st.cfg.slots)))
            st.producer = st.ctx.Process(target=producer_main, name="hog-producer",
                                         args=(st.cfg.source, st.queue))
            st.producer.start()
        st.backend.start()
        if gpuwatch.checks(st):
            gpuwatch.start_checked(st)
        elif gpuwatch.wanted(st):       # once the first jobs are sent (engine.gpuwatch)
            st.monitor_due_by = self.clock() + gpuwatch.DUE_S
        st.registry.describe(st.progress.slots, st.layout.root)
        st.registry.update(0)   # every runner says when it runs jobs
        if st.cfg.wait_for_running:
            control.note_others_running(st)

    @property
    def results(self) -> "ResultsSpool":
        """Finished jobs' results, encoded as they end (made on the first tick after
        the first jobs were sent: 4.5 ms of imports not before them)."""
        if self._results is None:
            from hog.state.resultfiles import ResultsSpool
            self._results = ResultsSpool(self.st.layout)
        return self._results

    # ------------------------------------------------------------- loop
    def run(self) -> int:
        st = self.st
        self.open()
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        st.flags.install([signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1,
                          signal.SIGUSR2], wake_w.fileno())
        try:
            self.start()
            if st.cfg.resume_on_boot:
                self._register_boot()
            ready: list = []
            poller, signals = Poller(), Poller()
            st.claims_ahead = self.looping = True   # (a stepped engine: job by job)
            while not self.step(self.clock(), ready):
                st.display.idle()
                timeout = max(0.0, st.next_tick - self.clock())
                if st.store.held_since is not None:     # writes left for a later commit
                    timeout = min(timeout, max(0.0, st.store.held_since + st.store.hold_s
                                               - time.monotonic()))
                gather = gather_s(st)
                if gather and timeout > gather and not signals.wait([wake_r], gather):
                    timeout -= gather   # (the slots' reports of that time: in one turn)
                ready = poller.wait(self.waitables(wake_r), timeout)
                control.handle_signals(st, wake_r if wake_r in ready else None)
        finally:
            self.shutdown()
            signal.set_wakeup_fd(-1)
        code = self.report()
        if st.cfg.resume_on_boot and st.exit_signal != signal.SIGTERM and not st.fatal:
            self._unregister_boot()         # the sweep ended (not a shutdown): no resuming
        if st.hooks is not None:
            from hog.engine import hooks  # (imported above when hooks were started)
            st.hooks.close(hooks.sweep_variables(st.progress, st.layout, code))
        return code

    def step(self, now: float, ready: Iterable = ()) -> bool:
        """One turn of the loop: what the ``ready`` waitables brought, the tick if
        ``now`` is past it, new jobs, and the claims of the jobs to start, in one write
        transaction; then the claimed jobs are sent. True once the run is finished."""
        st = self.st
        ticked = now >= st.next_tick
        if ticked and not st.stopping:
            control.recover_peers(st)       # may take a grace: outside the transaction
        # One write transaction per turn: what the slots reported, requests from
        # other shells, new jobs and the claims of the jobs to start; committed
        # before any of those jobs is sent to its slot.
        ticked = now >= st.next_tick
        # a turn that claims nothing while jobs are claimed ahead (engine.reserve) may
        # leave its writes to the next commit, HOLD_S at most; the tick commits
        st.store.hold_s = HOLD_S if self.looping and st.reserve and st.alone \
            and not ticked and not st.stopping else 0.0
        with st.store.batch():
            self._handle_ready(ready)
            if now >= st.next_tick:
                reserve.on_tick(st)     # (requests from other shells see none claimed ahead)
                control.tick(st, now)
                writable.tick(st)
            intake.ingest(st)
            dispatch.fill(st)
            outcomes.flush_started(st, now=ticked)     # (with the turn's writes, or the tick)
        writable.after_turn(st)     # refused by the disk: kept for later, claims undone
        dispatch.send_claimed(st)
        if st.monitor_due_by is not None and st.running:
            gpuwatch.start_due(st)
        if ticked and st.started_any:   # (no results before a job was sent, nor imports)
            self.results.advance(st.store)
        if self.to_parent.waiting:
            self._tell_parent()
        return self._finished()

    def _tell_parent(self) -> None:
        """--detach: the parent waits until the first job has started, or there is
        nothing to start until jobs are added (--keep_alive)."""
        st = self.st
        if st.started_any:
            self.to_parent.tell("its first job started")
        elif st.cfg.keep_alive and st.source_done and not st.running and not st.ready \
                and not self._queued_here():
            self.to_parent.tell("its queue is empty; it waits for hog add (--keep_alive)")

    def _handle_ready(self, ready: Iterable) -> None:
        st = self.st
        for obj in ready:
            if st.producer is not None and obj is st.producer.sentinel:
                st.producer_exited = True
                st.producer.join(0)
            elif st.backend.owns(obj):
                for event in st.backend.receive(obj):
                    outcomes.on_event(st, event)

    def waitables(self, wake_r: Optional[socket.socket] = None) -> list:
        """What the loop waits on: the wake-up fd, the slots, the producer."""
        st = self.st
        objs = ([] if wake_r is None else [wake_r]) + st.backend.waitables()
        if st.producer is not None and not st.producer_exited:
            objs.append(st.producer.sentinel)
        if intake.may_ingest(st):
            objs.append(st.queue._reader)
        return objs

    def _finished(self) -> bool:
        st = self.st
        if st.running:
            return False
        if writable.pending(st):        # the store has not taken everything yet
            return False
        if st.stopping:
            return True
        if st.next:     # handed to a slot whose job failed: on their way back to the queue
            return False
        if st.cfg.keep_alive or not st.source_done or st.ready:
            return False
        if st.joiner and st.store.meta("ingest_done") != "1" and self._ingester_alive():
            return False
        if control.recover_peers(st):       # a dead runner's jobs: ours to run now
            return False
        if st.left and not self._queued_here():    # the last that might run them
            with st.store.batch():
                for row, job in waiting.last_of_them(st):
                    outcomes.cannot_run_here(st, row, job, job.name or
                                             st.layout.folder_name(job.index),
                                             st.sched.never_fits(job) or "cannot run here",
                                             finishing=True)
        return not self._queued_here()

    def _ingester_alive(self) -> bool:
        return any(r.id != self.st.runner_id for r in self.st.store.live_runners())

    def _queued_here(self) -> bool:
        rows = self.st.store.queued(READY_AHEAD + len(self.st.not_here))
        return any(r.id not in self.st.not_here for r in rows) \
            or self.st.store.handed_elsewhere(self.st.runner_id)

    def _register_boot(self) -> None:
        from hog import boot  # only with --resume-on-boot: 5 ms of every start otherwise
        st = self.st
        try:
            done = boot.register(st.layout.state_dir, st.cfg.resume_on_boot)
        except (boot.BootError, OSError) as e:
            st.display.message(f"--resume-on-boot: could not register the sweep ({e}); it "
                               f"runs, but will not resume by itself after a reboot")
            return
        st.display.message(f"resumes by itself after a reboot ({done.describe()}): "
                           f"{done.script}")

    def _unregister_boot(self) -> None:
        from hog import boot
        try:
            boot.unregister(self.st.layout.state_dir)
        except (boot.BootError, OSError) as e:
            print(f"hog: --resume-on-boot: could not remove the registration ({e})",
                  file=sys.stderr, flush=True)

    # --------------------------------------------------------- shut-down
    def shutdown(self) -> None:
        st = self.st
        # leaving by an exception with jobs running: they must not outlive us
        st.backend.shutdown(list(st.running))
        if not st.root_gone:
            staging.remove_if_empty(st.layout)     # (what the slots made ahead is gone)
        if st.monitor is not None:
            st.monitor.stop()
            gpulog.append_looks(st.layout, st.monitor.take_history())
        st.registry.close()
        if st.producer is not None:
            if st.producer.is_alive():
                st.producer.kill()
            st.producer.join(2)
            st.queue.close()
            st.queue.cancel_join_thread()
        if st.store_open:
            if st.runner_id:    # registered (row ids start at 1)
                st.store.hold_s = 0.0
                with st.store.batch():      # (what the runner heard, not yet stored)
                    outcomes.flush_started(st, now=True)
                    outcomes.unhand_all(st)
                    reserve.give_back(st)
                sweep.forget_unstarted_scripts(st)
                writable.last_writes(st)    # what the disk refused so far, and retiring
                if not st.root_gone:
                    from hog.state.resultfiles import save_results
                    save_results(st.store, st.layout, self.results)   # results.jsonl / .csv
            st.store.close()
        st.display.stop()

    def report(self) -> int:
        """Print the summary; the exit code."""
        st = self.st
        p = st.progress
        st.display.idle()
        if st.source_error and not st.started_any and not p.finished:
            sweep.remove_unused_output(st)
            print(f"hog: error: {st.source_error}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        try:
            not_started = 0 if st.root_gone else sweep.not_started(st.layout)
        except (OSError, sqlite3.Error):     # the disk refuses even that: counted as none
            not_started = 0
        text = summary(p, not_started, st.stop_reason, st.source_error)
        if not p.finished and not st.stop_reason and not st.source_error:
            text = f"hog: nothing left to do in {st.cfg.output_dir}/ " \
                   f"({st.ingested[2]} job(s) had already succeeded)" \
                if st.ingested[2] else "hog: no jobs to run"
        try:
            print(text, file=sys.stderr if p.failed or st.source_error else sys.stdout,
                  flush=True)
        except (OSError, ValueError):
            pass
        return exit_code(p, st.exit_signal, st.source_error, st.started_any, st.fatal)


def run(config: RunConfig, make_display: DisplayFactory) -> int:
    return Runner(config, make_display).run()

