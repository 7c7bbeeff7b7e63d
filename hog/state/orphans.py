"""A dead runner's jobs in the queue: which runners died, the jobs they left
``running`` or ``handed`` (``orphans``), and each one settled by what its folder says
(``requeue_orphans``): a success its folder records is kept, a handed job whose attempt
never began is queued again as it was, and anything else (a handed job that began
counts as started) is recorded interrupted and queued again. Each change is conditional
on the row being as it was read, so of two runners that recover the same job only one
does. What is left of the jobs' processes is ended first, by the runner
(``engine.sweep``).
"""
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from hog.state.db import Writer
from hog.state.files import from_iso
from hog.state.rows import JobRow
from hog.state.runners import RunnerRows, runner_alive

# A verdict: a handed job whose attempt never began (``jobread.attempt_began``).
UNSTARTED = "unstarted"
# What a job folder says, for ``recover``: None, or (verdict, INFO mapping).
FolderStatus = Callable[[JobRow], Optional[Tuple[Optional[str], Dict[str, Any]]]]



class OrphanRows(Writer, RunnerRows):
    """The recovery of a dead runner's jobs (a role of ``state.jobs.Jobs``)."""

    def orphans_left(self, me: Optional[int] = None) -> bool:
        """Is a job of this queue left running by a runner that died (or ended)? Reads
        only: cheap enough for every tick of every runner."""
        if any(r.id != me and not runner_alive(r) for r in self.active_runners()):
            return True
        return self.db.execute(
            "SELECT 1 FROM jobs WHERE status IN ('running', 'handed') AND (runner IS NULL "
            "OR runner NOT IN (SELECT id FROM runners WHERE ended IS NULL)) LIMIT 1"
        ).fetchone() is not None

    def orphans(self, me: Optional[int] = None) -> List[JobRow]:
        """Retire the runners that died; the jobs they (or runners already retired) left
        ``running``. Nothing is changed on the jobs: ``requeue_orphans`` does, once what
        is left of them has been ended. ``me``: this runner, alive by definition."""
        with self.transaction():
            for r in self.active_runners():
                if r.id != me and not runner_alive(r):
                    self.db.execute("UPDATE runners SET ended = ? WHERE id = ? AND ended IS NULL",
                                    (time.time(), r.id))
            live_ids = {r.id for r in self.active_runners()}
            return [row for row in self._rows("WHERE status IN ('running', 'handed')")
                    if row.runner not in live_ids]

    def still_orphans(self, rows: Iterable[JobRow]) -> List[JobRow]:
        """Those of ``rows`` (from ``orphans``) still as they were read: running, same
        attempt, same runner (none recovered, queued again and claimed meanwhile)."""
        now = {r.id: r for r in self._rows("WHERE status IN ('running', 'handed')")}
        return [row for row in rows if row.id in now and (
            now[row.id].status, now[row.id].attempt, now[row.id].runner) == (
            row.status, row.attempt, row.runner)]

    def requeue_orphans(self, judged: Iterable[Tuple[JobRow, Optional[str], Dict[str, Any]]]
                        ) -> List[Tuple[JobRow, str]]:
        """Settle jobs from ``orphans`` by what their folders say, (row, verdict, INFO)
        with verdict 'succeeded', 'failed', None or ``UNSTARTED``: a folder with SUCCESS
        wins (its exit code and end time are taken from INFO); a ``handed`` job whose
        attempt never began (``UNSTARTED``) is queued again as it was before its claim;
        anything else is recorded interrupted and queued again. Each change is
        conditional on the row being as ``orphans`` read it (still running, same
        attempt, same runner), so of two runners that recover the same job only one
        does. Returns the (row, new status) pairs done."""
        changed = []
        same = "WHERE id = ? AND status = ? AND attempt = ? AND runner IS ?"
        with self.transaction():
            for row, verdict, info in judged:
                key = (row.id, row.status, row.attempt, row.runner)
                if verdict == UNSTARTED and row.status == "handed":
                    cur = self.db.execute(
                        f"UPDATE jobs SET status = 'queued', runner = NULL, slot = NULL, "
                        f"attempt = attempt - 1, started = NULL, note = '' {same}", key)
                    status = "handed"       # queued again: it had not started
                elif verdict == "succeeded":
                    cur = self.db.execute(
                        "UPDATE jobs SET status = 'succeeded', exit_code = ?, signal = ?, "
                        f"ended = ?, note = 'recovered from its folder' {same}",
                        (info.get("exit_code", 0), info.get("signal"),
                         from_iso(info.get("ended")) or time.time(), *key))
                    status = "succeeded"
                else:
                    cur = self.db.execute(
                        "UPDATE jobs SET status = 'queued', runner = NULL, pid = NULL, "
                        f"pgid = NULL, sid = NULL, proc_start = NULL, note = ? {same}",
                        (f"interrupted: its runner (pid {self.runner_pid(row.runner)}) "
                         f"died; queued again", *key))
                    status = "interrupted"
                if cur.rowcount == 1:
                    changed.append((row, status))
        return changed

    def recover(self, folder_status: FolderStatus) -> List[Tuple[JobRow, str]]:
        """``orphans`` then ``requeue_orphans`` with ``folder_status(row)`` (None, or
        (verdict, INFO mapping)), for callers with nothing left to end."""
        judged = []
        for row in self.orphans():
            verdict, info = folder_status(row) or (None, {})
            judged.append((row, verdict, info))
        return self.requeue_orphans(judged)
