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
- ``cancel(job)``: ``hog kill JOB`` cancels a queued job outright, or sets
  ``jobs.cancel`` of a running one; its runner lists those with
  ``cancel_requested`` and stops them.

Jobs added or queued again from another shell (``hog add``, ``hog retry``, in
``state.jobs``) reach a runner the same way: a commit it notices on its next tick.

Liveness (``runner_alive``): on this host, a runner's pid with the same kernel
start time (``hog.proc.proc_start_time``); elsewhere, a heartbeat younger than
``STALE_HEARTBEAT_S``. Runners beat every ``HEARTBEAT_S``.

Classes are roles over the one connection of ``state.db``: ``RunnerRows`` reads
(views have it through ``SweepReader``), ``Runners`` is the runner's own row,
``Mailbox`` the requests. ``state.store.Store`` combines them.
"""
import os
import socket
import time
from typing import List, Optional, cast

from hog.proc import is_zombie, proc_start_time
from hog.state.db import Database, Writer
from hog.state.jobdir import flag_withdrawn
from hog.state.rows import RunnerRow

STALE_HEARTBEAT_S = 60.0
HEARTBEAT_S = 5.0


def host() -> str:
    return socket.gethostname()


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

    def active_runners(self) -> List[RunnerRow]:
        rows = self.db.execute("SELECT * FROM runners WHERE ended IS NULL ORDER BY id")
        return [RunnerRow(*r) for r in rows]

    def live_runners(self) -> List[RunnerRow]:
        return [r for r in self.active_runners() if runner_alive(r)]

    def runner_pid(self, runner: Optional[int]) -> str:
        """The pid of runner ``runner`` as text, '?' when unknown (for notes)."""
        if runner is None:
            return "?"
        row = self.db.execute("SELECT pid FROM runners WHERE id = ?", (runner,)).fetchone()
        return str(row[0]) if row else "?"


class Runners(Writer, RunnerRows):
    """A runner's own row: registered at start, a heartbeat, retired at the end."""

    def register_runner(self, gpus: str) -> int:
        now = time.time()
        pid = os.getpid()
        cur = self.db.execute(
            "INSERT INTO runners (pid, host, proc_start, gpus, started, heartbeat) "
            "VALUES (?, ?, ?, ?, ?, ?)", (pid, host(), proc_start_time(pid), gpus, now, now))
        return cast(int, cur.lastrowid)     # set by every INSERT

    def heartbeat(self, runner: int, gpus: Optional[str] = None) -> None:
        if gpus is None:
            self._write("UPDATE runners SET heartbeat = ? WHERE id = ?", (time.time(), runner))
        else:
            self._write("UPDATE runners SET heartbeat = ?, gpus = ? WHERE id = ?",
                            (time.time(), gpus, runner))

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

    def cancel_requested(self, runner: int) -> List[int]:
        return [r[0] for r in self.db.execute(
            "SELECT id FROM jobs WHERE status = 'running' AND runner = ? AND cancel = 1",
            (runner,))]
