"""Requests from other shells and from signals, acted on between turns.

The tick (every ``TICK_S``) reads the store's request mailbox when its data
changed (``hog stop`` = drain, ``stop --now`` = kill, ``kill JOB`` = cancel,
``hog gpus`` = new slots), beats the runner's heartbeat, and follows the GPU
monitor and the neighbours registry. Signals only set flags; ``handle_signals``
turns them into the same drain / kill, (SIGHUP) sends the output to a log, or
(SIGUSR1, SIGUSR2) forwards them to the running jobs.

``recover_peers``, on the same tick but outside the turn's write transaction, notices
a runner of this queue that died (same host: its pid and start time; elsewhere: its
heartbeat) and recovers the jobs it left (``sweep.recover``): this runner runs them.
"""
import os
import signal
import socket
from typing import Optional

from hog.backends.base import LocalCapacity, PreDispatching, Resizable, Signalling
from hog.config import slots_for
from hog.engine import gpuwatch, intake, reruns, sweep, waiting, writable
from hog.engine.state import RunState, handed_jobs
from hog.errors import UsageError
from hog.messages import StopHow
from hog.state.jobdir import RUNNER_LOG
from hog.state.store import HEARTBEAT_S

TICK_S = 0.5


def tick(st: RunState, now: float) -> None:
    """Every 0.5 s: requests from other shells, heartbeat, GPU checks."""
    st.next_tick = now + TICK_S
    gpuwatch.tick(st, now)
    st.registry.update(len(st.running))
    if st.cfg.wait_for_running:
        note_others_running(st)
    if now >= st.next_heartbeat:
        st.next_heartbeat = now + HEARTBEAT_S
        st.store.heartbeat(st.runner_id)
        waiting.runners_changed(st)     # (a runner killed outright commits nothing)
    if not st.stopping and st.store.lost():
        queue_lost(st)
    version = st.store.data_version()
    if version == st.data_version:
        return
    st.data_version = version
    st.ready.clear()              # jobs added, cancelled or retried elsewhere
    waiting.runners_changed(st)   # a runner joined or ended: jobs left to others
    intake.refresh_total(st)
    request = st.store.pending_request(st.runner_id)
    if request == "kill" and not st.killing:
        kill_all(st, "stopped by hog stop --now: running jobs were terminated")
    elif request == "drain" and not st.stopping:
        drain(st, "stopped by hog stop: no new jobs were started")
    for job_id in st.store.cancel_requested(st.runner_id):
        for slot, d in st.running.items():
            if d.job.index == job_id and job_id not in st.cancelling:
                st.cancelling.add(job_id)
                st.backend.stop(slot, StopHow.CANCEL)
    for d in handed_jobs(st):       # handed ahead and cancelled (hog kill): taken back
        if st.withdrawing.get(d.job.index) != "cancel" and not st.store.still_handed(
                d.job.index):
            if d.job.index not in st.withdrawing and isinstance(st.backend, PreDispatching):
                st.backend.withdraw(d.slot, d.job.index)
            st.withdrawing[d.job.index] = "cancel"
    spec = st.store.take_gpus_request(st.runner_id)
    if spec is not None:
        change_slots(st, spec)
    for gpu in st.store.take_release_requests(st.runner_id):
        reruns.release(st, gpu)


def recover_peers(st: RunState) -> bool:
    """A dead runner's jobs: end what is left of them and queue them again, here (a
    job whose folder a dead runner's slot still writes waits for a later tick). Reads
    only, unless a runner died. True while jobs of a dead runner are left unsettled
    or were just queued again: this runner is not finished."""
    if not st.store.orphans_left(st.runner_id):
        return False
    recovered = sweep.recover(st, wait=False)
    if recovered:
        st.ready.clear()            # our own commits do not change data_version
        intake.refresh_total(st)
        st.display.message(sweep.recovered_note(recovered))
    return True


def note_others_running(st: RunState) -> None:
    """--wait-for-running: start nothing while another runner of this user (on this
    runner's GPUs, with --wait-for-same-gpus) runs jobs; say which, and when it is done."""
    other = st.registry.busy_neighbour(st.cfg.wait_for_same_gpus)
    before = st.registry.waiting_for
    st.others_running = other is not None
    if other == before:
        return
    st.registry.waiting_for = other
    if other is not None:
        st.display.message(f"--wait-for-running: waiting for {other.describe()}, which "
                           f"runs jobs")
    elif before is not None:
        st.display.message(f"--wait-for-running: done waiting: hog runner pid {before.pid} "
                           f"runs no job now")


def change_slots(st: RunState, spec: str) -> None:
    if not isinstance(st.backend, Resizable) or not isinstance(st.sched, LocalCapacity):
        st.display.message("hog gpus: with --backend ray the cluster's nodes decide the "
                           "GPUs (ray start --num-gpus); nothing changed")
        return
    try:
        wanted = slots_for(spec)
    except UsageError as e:
        st.display.message(f"hog gpus: {e}; keeping the current slots")
        return
    gone, added = st.sched.resize(wanted)
    for slot in gone:
        st.backend.remove_slot(slot)
    for slot in added:
        st.backend.add_slot(slot)
    st.progress.slots = st.sched.slot_gpus()
    st.registry.describe(st.progress.slots, st.layout.root)
    st.store.heartbeat(st.runner_id, ",".join(st.progress.slots))
    st.not_here.difference_update(st.left)      # jobs it left: perhaps its own now
    st.display.message(f"slots are now --gpus {','.join(st.progress.slots)}")


def handle_signals(st: RunState, wake_r: Optional[socket.socket]) -> None:
    """Act on the signals the flags hold; ``wake_r``: the wake-up socket, when it is
    readable (drained here)."""
    if wake_r is None and not st.flags.counts:
        return          # (the usual turn: no signal came)
    try:
        while wake_r is not None and wake_r.recv(64):
            pass
    except (BlockingIOError, InterruptedError):
        pass
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        if st.flags.take(sig):
            forward(st, sig)
    ints = st.flags.count(signal.SIGINT)
    if st.flags.count(signal.SIGHUP) and not st.detached:
        lose_terminal(st)
    if st.flags.count(signal.SIGTERM) and not st.killing:
        st.exit_signal = signal.SIGTERM
        kill_all(st, "stopped by SIGTERM: running jobs were terminated")
    elif ints >= 2 and not st.killing:
        st.exit_signal = signal.SIGINT
        kill_all(st, "stopped by a second Ctrl-C: running jobs were terminated")
    elif ints == 1 and not st.stopping:
        st.exit_signal = signal.SIGINT
        drain(st, "stopped by Ctrl-C: no new jobs were started")
        st.display.message(f"Ctrl-C: starting no new jobs; waiting for "
                           f"{len(st.running)} running job(s) to finish. Press Ctrl-C "
                           f"again to terminate them.")


def queue_lost(st: RunState) -> None:
    """The store's file was deleted or replaced under this runner: start nothing more
    (a fresh store would take the sweep for a new one); running jobs finish and are
    recorded in their folders, from which ``hog rebuild`` recreates the queue."""
    st.fatal = "the queue was lost"
    drain(st, writable.queue_lost_reason(st))
    st.display.message(st.stop_reason)


def forward(st: RunState, sig: int) -> None:
    """SIGUSR1 / SIGUSR2 (Slurm's ``--signal=USR1@60`` before a time limit): to every
    running job's process group, said once; the sweep goes on."""
    name = signal.Signals(sig).name
    if not isinstance(st.backend, Signalling):
        st.display.message(f"{name}: not forwarded: the {st.cfg.backend} backend does not "
                           f"forward signals to its jobs")
        return
    slots = list(st.running)
    for slot in slots:
        st.backend.signal(slot, sig)
    st.display.message(f"{name}: forwarded to {len(slots)} running job(s)")


def drain(st: RunState, reason: str) -> None:
    st.stopping = True
    st.stop_reason = reason
    st.progress.notice = reason


def kill_all(st: RunState, reason: str) -> None:
    drain(st, reason)
    st.killing = True
    for slot in list(st.running):
        st.backend.stop(slot, StopHow.KILL)


def lose_terminal(st: RunState) -> None:
    """SIGHUP: the terminal is gone. Keep running; send our output to a log."""
    st.detached = True
    log = os.path.join(st.layout.state_dir, RUNNER_LOG)
    try:
        st.display.stop()
    except Exception:  # noqa: BLE001 - the terminal may already be unusable
        pass
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:             # the output directory refuses it (read-only, gone)
        fd = os.open(os.devnull, os.O_WRONLY)
    for std in (1, 2):
        os.dup2(fd, std)
    os.close(fd)
    st.display = st.make_display(st.progress, "plain" if st.cfg.display != "quiet"
                                 else "quiet")
    st.display.message("terminal hung up (SIGHUP); carrying on, output goes here")
