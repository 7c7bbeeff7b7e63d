"""Runner rows, heartbeats and liveness, and the request mailbox between shells.

The mailbox is the most delicate contract in hog: a runner and a verb typed in
another shell (``hog stop``, ``hog kill``, ``hog gpus DIR``) meet only here, in
the store; no signal, pipe or socket passes between them. A verb writes and
commits one row; the runner sees ``data_version`` change on its next tick
(every 0.5 s) and only then reads its mail:

- ``request(how)``: ``hog stop`` (``'drain'``) and ``hog stop --now``
  (``'kill'``) set ``runners.request`` of each live runner; the runner reads it
  with ``pending_request``. The request stays until the runner ends, so the
  runner acts on it once and ignores it afterwards;
- ``request_gpus(runner, spec)``: ``hog gpus DIR SPEC`` sets
  ``runners.gpus_request``; the runner consumes it once with
  ``take_gpus_request`` (read, then cleared within its own batch);
- ``request_release(runner, gpu)``: ``hog gpus DIR --release GPU`` adds ``gpu`` to the
  runner's meta entry ``release:<runner>``; the runner consumes it with
  ``take_release_requests`` and lets that quarantined GPU serve again. The runner's
  quarantined GPUs (``engine/health.py``) are in meta ``quarantine:<runner>`` (JSON:
  GPU id -> why), kept by ``set_quarantined`` and read by ``quarantined``;
- ``cancel(job)``: ``hog kill JOB`` cancels a queued job outright, or sets
  ``jobs.cancel`` of a running one; its runner lists those with
  ``cancel_requested`` and stops them.

Jobs added or queued again from another shell (``hog add``, ``hog retry``, in
``state.jobs``) reach a runner the same way: a commit it notices on its next tick.

Liveness (``runner_alive``): on this host, a runner's pid with the same kernel
start time (``hog.proc.proc_start_time``); elsewhere, a heartbeat younger than
``STALE_HEARTBEAT_S``. Runners beat every ``HEARTBEAT_S``.

Which runner may run a job another cannot: each runner records its GPUs, whether it
is ``--keep-alive`` and its capacity (``register_runner``); a job no active runner can
run is marked with what it waits for (``set_waiting``, read by ``hog status``).

Classes are roles over the one connection of ``state.db``: ``RunnerRows`` reads
(views have it through ``SweepReader``), ``Runners`` is the runner's own row,
``Mailbox`` the requests. ``state.store.Store`` combines them.
"""
import json
import os
import time
from typing import Dict, List, Optional, Tuple, cast

from hog.proc import host, is_zombie, proc_start_time
from hog.state.db import Database, Writer
from hog.state.rows import RunnerRow
from hog.state.withdrawn import flag_withdrawn

STALE_HEARTBEAT_S = 60.0
HEARTBEAT_S = 5.0


def runner_alive(r: RunnerRow) -> bool:
    """Is this runner still running? On this host: its pid, with the same start time.
    Elsewhere: a heartbeat within ``STALE_HEARTBEAT_S``."""
    if r.ended is not None:
        return False
    if r.host != host():
        return time.time() - r.heartbeat < STALE_HEARTBEAT_S
    start = proc_start_time(r.pid)
    if not start:                       # gone (or /proc unreadable: trust kill)
        try:
            os.kill(r.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not os.path.isdir("/proc/self")
    if is_zombie(r.pid):                # exited, not yet reaped by its parent
        return False
    return not r.proc_start or start == r.proc_start


class RunnerRows(Database):
    """Reading the runners of a sweep (safe on a read-only connection)."""

    def runner(self, runner: int) -> RunnerRow:
        return RunnerRow(*self.db.execute("SELECT * FROM runners WHERE id = ?",
                                          (runner,)).fetchone())

    def all_runners(self) -> List[RunnerRow]:
        """Every runner that ever worked on this queue, ended ones too (for reports)."""
        return [RunnerRow(*r) for r in self.db.execute("SELECT * FROM runners ORDER BY id")]

    def slot_history(self) -> Dict[int, List[Tuple[float, str]]]:
        """Each runner's ``--gpus`` labels over time: (from when, labels), in order (only
        for runners that recorded them: stores of an older hog have none)."""
        out: Dict[int, List[Tuple[float, str]]] = {}
        for runner, at, gpus in self.db.execute(
                "SELECT runner, at, gpus FROM slot_changes ORDER BY runner, at, rowid"):
            out.setdefault(runner, []).append((at, gpus))
        return out

    def active_runners(self) -> List[RunnerRow]:
        rows = self.db.execute("SELECT * FROM runners WHERE ended IS NULL ORDER BY id")
        return [RunnerRow(*r) for r in rows]

    def live_runners(self) -> List[RunnerRow]:
        return [r for r in self.active_runners() if runner_alive(r)]

    def quarantined(self, runner: int) -> Dict[str, str]:
        """The GPUs runner ``runner`` has quarantined, each with why (one line)."""
        try:
            value = json.loads(self.meta(f"quarantine:{runner}") or "{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def waiting_jobs(self, limit: int = 1000) -> List[Tuple[int, Optional[str], str]]:
        """(id, name, what it waits for) of queued jobs no runner of the queue can run
        now (set by the runners with ``set_waiting``); through ``jobs_waiting``, never a
        scan of the queued jobs (``+status``: not by the status index)."""
        return [(r[0], r[1], r[2]) for r in self.db.execute(
            "SELECT id, name, waiting FROM jobs WHERE waiting IS NOT NULL AND +status = 'queued' "
            "ORDER BY id LIMIT ?", (limit,))]

    def runner_pid(self, runner: Optional[int]) -> str:
        """The pid of runner ``runner`` as text, '?' when unknown (for notes)."""
        if runner is None:
            return "?"
        row = self.db.execute("SELECT pid FROM runners WHERE id = ?", (runner,)).fetchone()
        return str(row[0]) if row else "?"


class Runners(Writer, RunnerRows):
    """A runner's own row: registered at start, a heartbeat, retired at the end."""

    def register_runner(self, gpus: str, keep_alive: bool = False, capacity: str = "") -> int:
        """Register this process as a runner of the queue: its GPUs (``--gpus``, or the
        backend's label), whether it waits for work (``--keep-alive``) and ``capacity``
        (JSON: cpu_slots, resources), read by the other runners (``engine/eligibility``)."""
        now = time.time()
        pid = os.getpid()
        cur = self.db.execute(
            "INSERT INTO runners (pid, host, proc_start, gpus, started, heartbeat, keep_alive, "
            "capacity) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (pid, host(), proc_start_time(pid), gpus, now, now, int(keep_alive), capacity))
        runner = cast(int, cur.lastrowid)   # set by every INSERT
        self.db.execute("INSERT INTO slot_changes (runner, at, gpus) VALUES (?, ?, ?)",
                        (runner, now, gpus))
        return runner

    def heartbeat(self, runner: int, gpus: Optional[str] = None) -> None:
        if gpus is None:
            self._write("UPDATE runners SET heartbeat = ? WHERE id = ?", (time.time(), runner))
        else:
            now = time.time()
            self._write("UPDATE runners SET heartbeat = ?, gpus = ? WHERE id = ?",
                            (now, gpus, runner))
            self._write("INSERT INTO slot_changes (runner, at, gpus) VALUES (?, ?, ?)",
                        (runner, now, gpus))

    def set_quarantined(self, runner: int, gpus: Dict[str, str]) -> None:
        self.set_meta(f"quarantine:{runner}", json.dumps(gpus, sort_keys=True))

    def set_waiting(self, job_id: int, waiting: Optional[str]) -> None:
        """What queued job ``job_id`` waits for (a runner with GPU 3, ...), for hog status;
        None once nothing is said about it."""
        self._write("UPDATE jobs SET waiting = ? WHERE id = ? AND status = 'queued'",
                    (waiting, job_id))

    def still_queued(self, job_id: int) -> bool:
        """Before a runner ends a queued job it cannot run: is it still queued (not run or
        ended by another runner meanwhile)? A write, so that, in the runner's turn, the
        answer holds until the turn commits."""
        cur = self._write("UPDATE jobs SET waiting = NULL WHERE id = ? AND status = 'queued'",
                          (job_id,), keep=False)
        return cur is None or cur.rowcount == 1

    def retire_runner(self, runner: int) -> None:
        self._write("UPDATE runners SET ended = ? WHERE id = ?", (time.time(), runner))


class Mailbox(Writer, RunnerRows):
    """Requests from other shells to a runner (see the module's docstring)."""

    # ------------------------------------------------- the verbs' side
    def request(self, request: str, runner: Optional[int] = None) -> int:
        """Ask live runners (or one) to 'drain' or 'kill'; returns how many were asked."""
        ids = [r.id for r in self.live_runners() if runner is None or r.id == runner]
        for rid in ids:
            self.db.execute("UPDATE runners SET request = ? WHERE id = ?", (request, rid))
        return len(ids)

    def request_gpus(self, runner: int, spec: str) -> None:
        self.db.execute("UPDATE runners SET gpus_request = ? WHERE id = ?", (spec, runner))

    def request_release(self, runner: int, gpu: str) -> None:
        """``hog gpus DIR --release GPU``: ask ``runner`` to let ``gpu`` serve again."""
        with self.transaction():
            asked = (self.meta(f"release:{runner}") or "").split(",")
            self.set_meta(f"release:{runner}", ",".join(g for g in asked + [gpu] if g))

    def cancel(self, job_id: int) -> str:
        """``hog kill``: cancel a job. Returns what happened."""
        with self.transaction():
            row = self.db.execute("SELECT status, attempt FROM jobs WHERE id = ?",
                                  (job_id,)).fetchone()
            if row is None:
                return "unknown"
            if row[0] == "handed":      # its slot reads this before it would start it
                flag_withdrawn(self.state_dir, job_id, row[1])
            if row[0] in ("queued", "handed"):      # handed: its runner takes it back
                self.db.execute("UPDATE jobs SET status = 'cancelled', cancel = 1, ended = ?, "
                                "note = 'cancelled before it started', "
                                "attempt = attempt - (status = 'handed') WHERE id = ?",
                                (time.time(), job_id))
                return "cancelled"
            if row[0] == "running":
                self.db.execute("UPDATE jobs SET cancel = 1 WHERE id = ?", (job_id,))
                return "stopping"
            return row[0]

    # ------------------------------------------------ the runner's side
    def pending_request(self, runner: int) -> Optional[str]:
        row = self.db.execute("SELECT request FROM runners WHERE id = ?", (runner,)).fetchone()
        return row[0] if row else None

    def take_gpus_request(self, runner: int) -> Optional[str]:
        row = self.db.execute("SELECT gpus_request FROM runners WHERE id = ?",
                              (runner,)).fetchone()
        if row and row[0]:
            self._write("UPDATE runners SET gpus_request = NULL WHERE id = ?", (runner,))
            return row[0]
        return None

    def take_release_requests(self, runner: int) -> List[str]:
        asked = self.meta(f"release:{runner}")
        if not asked:
            return []
        self.set_meta(f"release:{runner}", "")
        return asked.split(",")

    def cancel_requested(self, runner: int) -> List[int]:
        return [r[0] for r in self.db.execute(
            "SELECT id FROM jobs WHERE status = 'running' AND runner = ? AND cancel = 1",
            (runner,))]
