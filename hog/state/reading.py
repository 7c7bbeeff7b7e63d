"""``SweepReader``: what views, results files and ``hog status`` read of a sweep.

Opened ``readonly`` (SQLite's ``mode=ro``), so a view can never write the store,
even while runners are active, and nothing it does takes a write lock. It has the
read queries only: jobs by status, name or number, counts (and those of the jobs
that left the source: read from the counts the store keeps, never by a scan of the
jobs), the rows results files show, the views' time queries, and
the runners (``RunnerRows``). ``Store`` is a ``SweepReader`` too, so code that reads
takes either.
"""
import json
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from hog.errors import UsageError
from hog.model import Status
from hog.state.db import Database
from hog.state.jobdir import STATE_DIR
from hog.state.rows import IN_SOURCE_SQL, JOB_COLUMNS, PARAM_KEYS, JobRow, ResultRow
from hog.state.runners import RunnerRows

FINAL = Status.having("finished")
_SHOWN = "CASE status WHEN 'handed' THEN 'queued' ELSE status END"     # as counted
FAILED_SQL = Status.sql_list(Status.having("counts_as_failure"))
TIMED_SQL = Status.sql_list(Status.having("ran_its_course"))
# ``job_counts`` rows of jobs that left the source (``IN_SOURCE_SQL`` false): listed
# last by a reading before the last one read to its end
GONE_SQL = ("seen >= 0 AND seen < coalesce((SELECT CAST(value AS INTEGER) FROM meta "
            "WHERE key = 'read'), 0)")
_HAS_PARAMS = "instr(j.spec, '\"params\"') > 0"        # a grid job's spec (rows.job_spec)
_WITH_PARAMS = f"CASE WHEN {_HAS_PARAMS} THEN j.spec END"


class SweepReader(RunnerRows):
    """A read-only connection to a sweep's database."""

    def __init__(self, state_dir: str):
        Database.__init__(self, state_dir, create=False, readonly=True)

    # ---------------------------------------------------------- jobs
    def find(self, ref: str) -> List[JobRow]:
        """Jobs by folder number (``7`` or ``job_7``-style names) or by name."""
        rows = self._rows("WHERE name = ?", (ref,))
        if rows:
            return rows
        digits = ref.rsplit("_", 1)[-1] if not ref.isdigit() else ref
        if digits.isdigit():
            return self._rows("WHERE id = ?", (int(digits),))
        return []

    def by_name(self, name: str) -> List[JobRow]:
        return self._rows("WHERE name = ?", (name,))

    def row(self, job_id: int) -> Optional[JobRow]:
        rows = self._rows("WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def failed_ids(self) -> List[int]:
        """Jobs that failed, of those still in the source (``hog retry --failed``)."""
        return [r[0] for r in self.db.execute(
            f"SELECT id FROM jobs WHERE status IN {FAILED_SQL} AND {IN_SOURCE_SQL} "
            f"ORDER BY id")]

    # counts: from ``job_counts``, which the store's triggers keep (``state.schema``
    # version 4): a few rows per status, whatever the number of jobs
    def counts(self) -> Dict[str, int]:
        """Every job by status, those that left the source included (a job handed to a
        busy slot ahead has not started: it counts as queued)."""
        return dict(self.db.execute(f"SELECT {_SHOWN}, sum(n) FROM job_counts GROUP BY 1 "
                                    f"HAVING sum(n) > 0"))

    def gone_counts(self) -> Dict[str, int]:
        """The jobs the source no longer lists, by status."""
        return dict(self.db.execute(f"SELECT {_SHOWN}, sum(n) FROM job_counts WHERE {GONE_SQL} "
                                    f"GROUP BY 1 HAVING sum(n) > 0"))

    def runnable_count(self) -> int:
        """Queued jobs that may start (not those that were queued when they left the
        source, nor, while the source is read again, those it has not listed yet)."""
        return self.db.execute(
            "SELECT coalesce(sum(n), 0) FROM job_counts WHERE status = 'queued' AND "
            "(seen = -1 OR seen = coalesce((SELECT CAST(value AS INTEGER) FROM meta "
            "WHERE key = 'reading'), 0))").fetchone()[0]

    def rows_with_status(self, status: str, limit: int = 1000) -> List[JobRow]:
        return self._rows("WHERE status = ? ORDER BY id LIMIT ?", (status, limit))

    def all_rows(self) -> Iterator[JobRow]:
        cur = self.db.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id")
        for r in cur:
            yield JobRow(*r)

    def result_rows(self, after: int = -1, limit: int = -1) -> Iterator[ResultRow]:
        """Every job (numbered above ``after``; at most ``limit``) with what a results
        file shows (its runner's host too), by id; plain tuples, fast enough for
        100,000 jobs at the end of a run."""
        cur = self.db.execute(
            "SELECT j.id, j.name, j.command, j.status, j.exit_code, j.signal, j.attempt, "
            "j.gpus, j.slot, j.runner, r.host, j.started, j.ended, j.note, "
            f"{IN_SOURCE_SQL}, "
            "j.cpu_user_s, j.cpu_system_s, j.max_rss_bytes, j.gpu_mem_peak_bytes, "
            f"j.gpu_util_mean, {_WITH_PARAMS} "
            "FROM jobs j LEFT JOIN runners r ON r.id = j.runner WHERE j.id > ? "
            "ORDER BY j.id LIMIT ?", (after, limit))
        return map(ResultRow._make, cur)

    def param_keys(self) -> List[str]:
        """The grid parameters the sweep's jobs carry (``params`` in ``spec``), sorted:
        kept in meta as jobs are recorded (``Jobs``), so no call reads every job."""
        try:
            keys = json.loads(self.meta(PARAM_KEYS) or "[]")
        except ValueError:
            return []
        return sorted(str(k) for k in keys) if isinstance(keys, list) else []

    # ------------------------------------------------------ views' queries
    def latest_ended(self, statuses: Sequence[str], limit: int) -> List[JobRow]:
        """Jobs with one of ``statuses``, the one that ended last first."""
        marks = ",".join("?" * len(statuses))
        # (read from the end of jobs_by_end: ``+status`` keeps the planner off the
        # status index, which would sort every finished job)
        return self._rows(f"WHERE ended IS NOT NULL AND +status IN ({marks}) "
                          f"ORDER BY ended DESC, id DESC LIMIT ?", (*statuses, limit))

    def ended_since(self, since: float, limit: int = 10000) -> List[JobRow]:
        """Jobs that ended (for good, not for a retry) at ``since`` or later, in order."""
        marks = ",".join("?" * len(FINAL))
        return self._rows(f"WHERE ended >= ? AND +status IN ({marks}) ORDER BY ended, id "
                          f"LIMIT ?", (since, *[s.value for s in FINAL], limit))  # jobs_by_end

    def time_span(self) -> Tuple[Optional[float], Optional[float]]:
        """(the first start, the last end) of the sweep's jobs; None where none is known."""
        first, last = self.db.execute("SELECT min(started), max(ended) FROM jobs").fetchone()
        return first, last

    def duration_stats(self, latest: int = 1000) -> Tuple[int, float]:
        """(jobs that ran to an end, the sum of their durations in seconds), of the
        ``latest`` that ended last: read from the end of ``jobs_by_end``, so the same
        cost at any sweep size (the mean of the recent jobs, for a time left)."""
        n, total = self.db.execute(
            "SELECT count(*), coalesce(sum(ended - started), 0) FROM (SELECT started, ended "
            f"FROM jobs WHERE ended IS NOT NULL AND +status IN {TIMED_SQL} "
            "AND started IS NOT NULL ORDER BY ended DESC LIMIT ?)", (latest,)).fetchone()
        return n, float(total)


def open_sweep(directory: str) -> SweepReader:
    """A ``SweepReader`` on the sweep in output directory ``directory``."""
    if not os.path.isdir(directory):
        raise UsageError(f"{directory}: no such directory")
    return SweepReader(os.path.join(directory, STATE_DIR))
