"""The runner: producer -> queue -> scheduler -> consumers -> job folders.

The main process owns the loop. It takes jobs from the producer's queue only
while a slot is free (back-pressure), asks the scheduler where each goes, sends
it to that slot's consumer, and records what comes back. It blocks on its pipes
and a signal wake-up fd; nothing polls on a timer.
"""
import fcntl
import os
import pickle
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import multiprocess
from multiprocess.connection import wait

from hog import spawn
from hog.consumer import KILL, consumer_main
from hog.display import Progress, Running, make_display, summary
from hog.errors import UsageError
from hog.flags import SignalFlags
from hog.jobdir import JobFolder, Layout, info_fields
from hog.model import Dispatch, Job, Outcome, Slot, Status
from hog.producer import SourceSpec, producer_main
from hog.scheduler import Scheduler

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INT, EXIT_TERM = 0, 1, 2, 130, 143


@dataclass(frozen=True)
class RunConfig:
    source: SourceSpec
    slots: Tuple[str, ...]
    output_dir: str = "output"
    prefix: str = "job_"
    grace: float = 5.0
    display: str = "auto"   # auto | live | plain | quiet


class Runner:
    def __init__(self, config: RunConfig):
        self.cfg = config
        self.layout = Layout(os.path.abspath(config.output_dir), config.prefix)
        self.ctx = multiprocess.get_context("fork")
        self.sched = Scheduler([Slot(i, g) for i, g in enumerate(config.slots)])
        self.progress = Progress(slots=list(config.slots))
        self.flags = SignalFlags()
        self.conns: Dict[int, object] = {}
        self.procs: Dict[int, object] = {}
        self.running: Dict[int, Dispatch] = {}
        self.pids: Dict[int, int] = {}
        self.head: Optional[Job] = None
        self.source_done = False
        self.source_error = ""
        self.producer_exited = False
        self.started_any = False
        self.produced = 0
        self.stopping = False       # first Ctrl-C: start nothing new
        self.killing = False        # second Ctrl-C / SIGTERM: end running jobs
        self.stop_reason = ""
        self.exit_signal = 0
        self.detached = False

    # ------------------------------------------------------------ set-up
    def _prepare_output(self) -> None:
        self.created_root = not os.path.exists(self.layout.root)
        self.layout.prepare_root()
        lock_path = os.path.join(self.layout.state_dir, "runner.lock")
        self._lock = open(lock_path, "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another hog is already running on {self.cfg.output_dir}/ "
                             f"(lock {lock_path}); use another --output_dir") from None
        existing = self.layout.existing_job_folders()
        if existing:
            raise UsageError(f"{self.cfg.output_dir}/ already holds job folders from an "
                             f"earlier run ({', '.join(existing)}, ...); nothing is overwritten:"
                             f" use another --output_dir, or move that one away")

    def _start_processes(self) -> None:
        self.queue = self.ctx.Queue(maxsize=max(64, 4 * len(self.cfg.slots)))
        self.total = self.ctx.Value("q", -1, lock=False)
        self.producer = self.ctx.Process(target=producer_main, name="hog-producer",
                                         args=(self.cfg.source, self.queue, self.total))
        self.producer.start()
        for slot in range(len(self.cfg.slots)):
            self._start_consumer(slot)

    def _start_consumer(self, slot: int) -> None:
        ours, theirs = self.ctx.Pipe(duplex=True)
        close = [ours] + list(self.conns.values())
        proc = self.ctx.Process(target=consumer_main, name=f"hog-slot-{slot}",
                                args=(theirs, self.layout, self.cfg.grace, close))
        proc.start()
        theirs.close()
        self.conns[slot] = ours
        self.procs[slot] = proc

    # ------------------------------------------------------------- loop
    def run(self) -> int:
        self._prepare_output()
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self.flags.install([signal.SIGINT, signal.SIGTERM, signal.SIGHUP], wake_w.fileno())
        self._start_processes()
        self.display = make_display(self.progress, self.cfg.display)
        self.display.start()
        self.slot_of_conn = {id(c): s for s, c in self.conns.items()}
        try:
            while True:
                self._fill()
                if self._finished():
                    break
                self.display.idle()
                ready = wait(self._waitables(wake_r))
                self._handle_signals(wake_r)
                for obj in ready:
                    if obj is wake_r:
                        continue
                    if obj is self.producer.sentinel:
                        self.producer_exited = True
                        self.producer.join(0)
                    elif obj is self.queue._reader:
                        continue   # taken in _fill, when a slot is free
                    else:
                        self._from_consumer(self.slot_of_conn[id(obj)])
        finally:
            self._shutdown()
            signal.set_wakeup_fd(-1)
        return self._report()

    def _waitables(self, wake_r) -> list:
        objs = [wake_r] + list(self.conns.values())
        if not self.producer_exited:
            objs.append(self.producer.sentinel)
        if self._wants_jobs():
            objs.append(self.queue._reader)
        return objs

    def _wants_jobs(self) -> bool:
        return not self.stopping and not self.source_done and self.head is None \
            and self.sched.has_free

    def _finished(self) -> bool:
        if self.running:
            return False
        return self.stopping or (self.source_done and self.head is None)

    def _fill(self) -> None:
        """Start jobs while slots are free and jobs are available."""
        while not self.stopping and self.sched.has_free:
            if self.head is None:
                if self.source_done or not self._next_from_queue():
                    return
                continue
            job = self.head
            name = job.name or self.layout.folder_name(job.index)
            why = self.sched.never_fits(job)
            if why:
                self.head = None
                self._unschedulable(job, name, why)
                continue
            d = self.sched.place(job, name)
            if d is None:
                return
            self.head = None
            self._dispatch(d)

    def _next_from_queue(self) -> bool:
        """Take one message from the producer if one is ready; True if taken."""
        if not self.queue._reader.poll():
            if self.producer_exited:
                self.source_done = True
                code = self.producer.exitcode
                if not self.source_error and code not in (0, None):
                    self.source_error = f"the job source process died (exit code {code})"
            return False
        kind, *rest = pickle.loads(self.queue.get())
        if kind == "job":
            self.head = rest[0]
            self.produced += 1
        elif kind == "end":
            self.source_done = True
        else:
            self.source_done = True
            self.source_error = rest[0]
        if self.total.value >= 0:
            self.progress.total = self.total.value
        return True

    def _dispatch(self, d: Dispatch) -> None:
        self.running[d.slot] = d
        self.started_any = True
        self.progress.running[d.slot] = Running(d.name, ",".join(d.gpu_ids), time.time())
        self._send(d.slot, d)

    def _send(self, slot: int, message) -> None:
        try:
            self.conns[slot].send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        except OSError:
            pass   # the consumer is gone; its EOF is handled in _from_consumer

    def _from_consumer(self, slot: int) -> None:
        conn = self.conns[slot]
        try:
            kind, *rest = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            self._consumer_died(slot)
            return
        if kind == "started":
            _, index, pid, started = rest
            self.pids[slot] = pid
            r = self.progress.running.get(slot)
            if r is not None:
                r.started = started
            self.display.job_started(slot, self.running[slot].name,
                                     ",".join(self.running[slot].gpu_ids), pid)
        elif kind == "ended":
            self._ended(rest[0])

    def _ended(self, outcome: Outcome) -> None:
        self.running.pop(outcome.slot, None)
        self.pids.pop(outcome.slot, None)
        self.sched.release(outcome.slot)
        self.progress.record(outcome)
        if self.total.value >= 0:
            self.progress.total = self.total.value
        self.display.job_ended(outcome)

    def _consumer_died(self, slot: int) -> None:
        """A consumer vanished (killed by someone): end its job, record it, replace it."""
        conn = self.conns.pop(slot)
        del self.slot_of_conn[id(conn)]
        conn.close()
        proc = self.procs.pop(slot)
        proc.join(1)
        d = self.running.get(slot)
        if d is not None:
            pid = self.pids.get(slot)
            now = time.time()
            if pid is not None:
                spawn.signal_group(pid, signal.SIGKILL)
            started = self.progress.running[slot].started
            self._record_without_consumer(d, Status.INTERRUPTED, started, now, pid,
                                          f"its slot process died (exit code {proc.exitcode})")
        if not (self.killing or self.stopping):
            self.display.message(f"slot {slot} process died (exit code {proc.exitcode}); "
                                 f"starting a new one")
            self._start_consumer(slot)
            self.slot_of_conn[id(self.conns[slot])] = slot

    def _record_without_consumer(self, d: Dispatch, status: Status, started: float,
                                 ended: float, pid: Optional[int], why: str) -> None:
        folder = JobFolder(self.layout, d.job.index)
        folder.create()
        with open(folder.err_path, "a") as f:
            f.write(f"hog: {why}\n")
        open(folder.out_path, "a").close()
        outcome = Outcome(index=d.job.index, name=d.name, slot=d.slot, status=status,
                          exit_code=None, signal=None, started=started, ended=ended, pid=pid,
                          attempt=d.attempt, err_path=folder.err_path, note=why)
        folder.finish(info_fields(name=d.name, index=d.job.index, command=d.job.command,
                                  gpu_ids=d.gpu_ids, slot=d.slot, pid=pid, attempt=d.attempt,
                                  status=status, started=started, ended=ended), outcome)
        self._ended(outcome)

    def _unschedulable(self, job: Job, name: str, why: str) -> None:
        self.display.message(f"{name} ({job.where}) {why}; it will not run")
        now = time.time()
        d = Dispatch(job=job, slot=-1, gpu_ids=(), name=name)
        self._record_without_consumer(d, Status.UNSCHEDULABLE, now, now, None, f"{name} {why}")

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
            self.stopping = True
            self.stop_reason = "stopped by Ctrl-C: no new jobs were started"
            note = (f"Ctrl-C: starting no new jobs; waiting for {len(self.running)} running "
                    f"job(s) to finish. Press Ctrl-C again to terminate them.")
            self.progress.notice = note
            self.display.message(note)

    def _kill_all(self, reason: str) -> None:
        self.stopping = self.killing = True
        self.stop_reason = reason
        self.progress.notice = reason
        for slot in list(self.running):
            self._send(slot, KILL)

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
        if self.running:            # leaving by an exception: jobs must not outlive us
            for slot in list(self.running):
                self._send(slot, KILL)
        for slot in list(self.conns):
            self._send(slot, None)
        deadline = time.monotonic() + self.cfg.grace + 5
        for proc in self.procs.values():
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1)
        if self.producer.is_alive():
            self.producer.kill()
        self.producer.join(2)
        for conn in self.conns.values():
            conn.close()
        self.queue.close()
        self.queue.cancel_join_thread()
        self.display.stop()

    def _remove_unused_output(self) -> None:
        """Nothing ran: leave no empty output directory behind."""
        try:
            os.unlink(os.path.join(self.layout.state_dir, "runner.lock"))
            os.rmdir(self.layout.state_dir)
            if self.created_root:
                os.rmdir(self.layout.root)
        except OSError:
            pass

    def _report(self) -> int:
        p = self.progress
        not_started = 0
        if p.total is not None:
            not_started = max(0, p.total - p.finished)
        elif self.head is not None:
            not_started = 1
        self.display.idle()
        if self.source_error and not self.started_any and not p.finished:
            self._remove_unused_output()
            print(f"hog: error: {self.source_error}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        text = summary(p, not_started, self.stop_reason, self.source_error)
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
        if p.failed or self.source_error:
            return EXIT_FAILED
        return EXIT_OK


def run(config: RunConfig) -> int:
    return Runner(config).run()


def slots_for(spec: Optional[str]) -> List[str]:
    from hog.discovery import discover
    from hog.gpuspec import parse_gpus
    return parse_gpus(spec, discover)
