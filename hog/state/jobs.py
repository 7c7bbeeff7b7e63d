"""The queue's jobs, as the runner and the verbs change them: ingest from the sweep's
source, ``hog add``, claim, started, ended, retry, and recovery after a crash.

Every state change of a job is committed here before it is acted on (a job is
``running`` in the store before its consumer is told to start it), so a crash at
any point leaves a state that ``recover`` can reconcile with the job folders.
``claim`` is one conditional ``UPDATE``, so two runners on one queue never take
the same job. A job claimed as a busy slot's next job is ``handed``: it is not
running (``hog status`` says so) until its start is stored (``started``, or with its
end: ``ended``); ``unhand`` gives one its slot did not start back to the queue, its
attempt uncounted; recovery (``state.orphans``) does the same for a dead runner's.
``Jobs`` is a role over the one connection of ``state.db``; ``state.store.Store``
combines it with the others.

A job read from the source is found again by its identity key (``state.identity``),
never by its position, so an edited source runs only what is new or changed; each
reading of the source is numbered (``begin_reading``, ``end_reading``) so that the
jobs it no longer lists are known, kept, and never started.
"""
import json
import time
from itertools import islice
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from hog.model import NO_USAGE, USAGE_FIELDS, Job, JobProcess, Status, Usage
from hog.state.identity import Occurrences, job_digest
from hog.state.orphans import OrphanRows
from hog.state.rows import IN_SOURCE_SQL, PARAM_KEYS, RUNNABLE_SQL, JobRow, job_spec

RERUNNABLE = tuple(s.value for s in Status.having("rerunnable"))
RESUMED = tuple(s.value for s in Status.having("resumed"))     # not cancelled
ADD_CHUNK = 10_000      # rows ``add`` holds at a time

_INSERT = ("INSERT INTO jobs (id, source_pos, name, command, spec, origin, priority, added, "
           "digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_READ = ("INSERT INTO jobs (id, source_pos, name, command, spec, origin, priority, added, "
                "ident, digest, seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

class Jobs(OrphanRows):
    """Writing the queue's jobs (and the runner's reads of what to run next)."""

    _occurrences: Optional[Occurrences] = None     # the keys of the reading under way

    # ---------------------------------------------------------- ingest
    def begin_reading(self) -> int:
        """A runner starts reading the sweep's source (from its start): the reading's
        number, which ``ingest`` marks the jobs it lists with. Until a job is listed
        by this reading it does not start (it may have left the source)."""
        with self.transaction():
            reading = self._meta_int("reading") + 1
            self.set_meta("reading", str(reading))
        self._occurrences = Occurrences()
        return reading

    def end_reading(self) -> int:
        """The source was read to its end: jobs it did not list have left it (they keep
        their rows and folders). Returns how many such jobs there are."""
        with self.transaction():
            reading = self._meta_int("reading")
            self.set_meta("read", str(reading))
            # the kept counts (state.schema version 4), not a scan; drop the rows of
            # readings no job is left in
            self.db.execute("DELETE FROM job_counts WHERE n = 0")
            return self.db.execute("SELECT coalesce(sum(n), 0) FROM job_counts WHERE "
                                   "seen >= 0 AND seen < ?", (reading,)).fetchone()[0]

    def _meta_int(self, key: str) -> int:
        value = self.meta(key)
        return int(value) if value else 0

    def ingest(self, jobs: Sequence[Job], resume: bool,
               runner: Optional[int] = None) -> Tuple[int, int, int]:
        """Record jobs read from the sweep's source, in source order (one reading's
        jobs may come in several calls: ``begin_reading`` starts the count).

        A job is found by its identity key (``state.identity``): a new key is a new
        job, queued with the next folder number. A known one is kept as it is (when
        ``resume``: a failed, interrupted or never-finished one is queued again); a
        named job whose definition changed is queued again with its new definition (a
        new attempt in its own folder). Options that are not part of the definition
        (priority, retries, timeout, ...) and where it is in the source are updated.
        Returns (added, queued again or still queued, skipped: succeeded before
        ``runner`` started).
        """
        requeued = skipped = 0
        now = time.time()
        occurrences = self._occurrences
        if occurrences is None:
            occurrences = self._occurrences = Occurrences()
        keyed = []
        for job in jobs:
            digest = job_digest(job)
            keyed.append((job, occurrences.key(job, digest), digest))
        with self.transaction():
            reading = self._meta_int("reading")
            existing: Dict[str, tuple] = {}
            for chunk in _chunks([k for _, k, _ in keyed], 500):
                marks = ",".join("?" * len(chunk))
                for r in self.db.execute(
                        f"SELECT ident, id, digest, status, runner, source_pos, name, spec, "
                        f"origin, priority FROM jobs WHERE ident IN ({marks})", chunk):
                    existing[r[0]] = r[1:]
            # The places in the source that new or moved jobs now hold: whoever held one
            # (a job of an earlier reading, maybe one further on in this one) gives it up.
            taken = [job.index for job, key, _ in keyed
                     if key not in existing or existing[key][4] != job.index]
            for chunk in _chunks(taken, 500):
                self.db.execute(f"UPDATE jobs SET source_pos = NULL WHERE source_pos IN "
                                f"({','.join('?' * len(chunk))})", chunk)
            next_id = self._next_id()
            new_rows, listed = [], []
            for job, key, digest in keyed:
                old = existing.get(key)
                spec = job_spec(job)
                if old is None:
                    new_rows.append((next_id, job.index, job.name, job.command, spec, job.where,
                                     job.priority, now, key, digest, reading))
                    next_id += 1
                    continue
                jid, old_digest, status, ran_by = old[:4]
                listed.append((reading, job.index, jid))
                if old_digest != digest:        # a named job: a new attempt, same folder
                    cur = self.db.execute(
                        "UPDATE jobs SET command = ?, spec = ?, digest = ?, name = ?, "
                        "origin = ?, priority = ?, status = 'queued', cancel = 0, "
                        "note = 'its definition changed; queued again' WHERE id = ? "
                        "AND status NOT IN ('running', 'handed')",
                        (job.command, spec, digest, job.name, job.where, job.priority, jid))
                    requeued += cur.rowcount
                    continue
                if old[5:] != (job.name, spec, job.where, job.priority):
                    self.db.execute("UPDATE jobs SET name = ?, spec = ?, origin = ?, "
                                    "priority = ? WHERE id = ?",
                                    (job.name, spec, job.where, job.priority, jid))
                if status == "succeeded":
                    skipped += ran_by is None or ran_by != runner
                elif resume and status in RESUMED:
                    self.db.execute("UPDATE jobs SET status = 'queued', cancel = 0, "
                                    "note = 'queued again on resume' WHERE id = ?", (jid,))
                    requeued += 1
                elif status in ("queued", "handed"):
                    requeued += 1
            self.db.executemany("UPDATE jobs SET seen = ?, source_pos = ? WHERE id = ?", listed)
            self.db.executemany(_INSERT_READ, new_rows)
            self._note_params(jobs)
        return len(new_rows), requeued, skipped

    def _note_params(self, jobs: Iterable[Job]) -> None:
        """Keep meta's list of grid parameters (``PARAM_KEYS``) up to date with ``jobs``'
        (inside the caller's transaction)."""
        keys = {str(k) for job in jobs for k, _ in job.params}
        if not keys:
            return
        try:
            known = set(json.loads(self.meta(PARAM_KEYS) or "[]"))
        except ValueError:
            known = set()
        if not keys <= known:
            self.set_meta(PARAM_KEYS, json.dumps(sorted(known | keys)))

    def add(self, jobs: Iterable[Job]) -> List[int]:
        """Append jobs outside the sweep's source (``hog add``, watched scripts): always
        new jobs, with no identity key; returns their ids."""
        return list(self.add_stream(jobs))

    def add_stream(self, jobs: Iterable[Job]) -> range:
        """``add``, reading ``jobs`` as they are inserted, ``ADD_CHUNK`` rows at a time,
        in one transaction (all or none: an error part-way adds none), so a million
        jobs take flat memory. Their ids are consecutive: returned as a range."""
        now = time.time()
        rows = iter(jobs)
        with self.transaction():
            first = next_id = self._next_id()
            while True:
                jobs_now = list(islice(rows, ADD_CHUNK))
                if not jobs_now:
                    break
                self.db.executemany(_INSERT, [
                    self._row_values(next_id + i, job, None, now) + (job_digest(job),)
                    for i, job in enumerate(jobs_now)])
                self._note_params(jobs_now)
                next_id += len(jobs_now)
        return range(first, next_id)

    def forget_unstarted(self, origin_prefix: str) -> int:
        """Drop the queued jobs never started whose origin starts with ``origin_prefix``
        (a watched directory's scripts still in its to_run/: queued again when it is
        next watched); how many."""
        with self.transaction():
            return self.db.execute(
                "DELETE FROM jobs WHERE status = 'queued' AND attempt = 0 AND "
                "source_pos IS NULL AND substr(origin, 1, length(?1)) = ?1",
                (origin_prefix,)).rowcount

    def _next_id(self) -> int:
        """Folder numbers count from 0; call inside a write transaction."""
        return self.db.execute("SELECT coalesce(max(id) + 1, 0) FROM jobs").fetchone()[0]

    @staticmethod
    def _row_values(job_id: int, job: Job, source_pos: Optional[int], now: float) -> tuple:
        return (job_id, source_pos, job.name, job.command, job_spec(job), job.where,
                job.priority, now)

    # ------------------------------------------------------ scheduling
    def queued(self, limit: int) -> List[JobRow]:
        """The next queued jobs in run order: priority (high first), then id (read in
        that order from the index of the queued jobs, which the planner does not always
        choose by itself: the other would sort them all)."""
        return self._rows(f"INDEXED BY jobs_queue WHERE {RUNNABLE_SQL} "
                          "ORDER BY priority DESC, id LIMIT ?", (limit,))

    def claim(self, job_id: int, attempts: int, runner: int, slot: Optional[int],
              gpus: Optional[str], handed: bool = False) -> Optional[int]:
        """Mark a queued job running on this runner (``handed``: handed to ``slot`` as
        its next job), if it is still queued with ``attempts`` attempts behind it (one
        statement, so atomic); returns its new attempt number, or None when another
        runner took it first or it changed."""
        cur = self._write(
            f"UPDATE jobs SET status = '{'handed' if handed else 'running'}', runner = ?, "
            "slot = ?, gpus = ?, "
            "attempt = attempt + 1, pid = NULL, pgid = NULL, sid = NULL, proc_start = NULL, "
            "exit_code = NULL, signal = NULL, cpu_user_s = NULL, cpu_system_s = NULL, "
            "max_rss_bytes = NULL, gpu_mem_peak_bytes = NULL, gpu_util_mean = NULL, "
            "started = ?, ended = NULL, note = '' "
            "WHERE id = ? AND status = 'queued' AND attempt = ?",
            (runner, slot, gpus, time.time(), job_id, attempts), keep=False)
        self.claimed_now = True         # (a claim is committed before its job is sent)
        return attempts + 1 if cur is not None and cur.rowcount == 1 else None

    def assign_handed(self, job_id: int, slot: int, gpus: str) -> None:
        """A job claimed ahead for no slot yet (``engine.reserve``) is handed to
        ``slot``."""
        self._write("UPDATE jobs SET slot = ?, gpus = ? WHERE id = ? AND status = 'handed'",
                    (slot, gpus, job_id))

    def handed_elsewhere(self, me: int) -> bool:
        """Has another runner handed jobs to its slots ahead (which it gives back to
        the queue once it sees this runner)?"""
        return self.db.execute("SELECT 1 FROM jobs WHERE status = 'handed' AND runner != ? "
                               "LIMIT 1", (me,)).fetchone() is not None

    def still_handed(self, job_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM jobs WHERE id = ? AND status = 'handed'",
                               (job_id,)).fetchone() is not None

    def unhand(self, job_id: int, cancelled: bool = False, later: bool = False) -> None:
        """A handed job its slot gave back unstarted: queued again as before its claim
        (its attempt not counted), or (``cancelled``) cancelled before it started.
        ``later``: after a batch the disk refused, kept for the next one (applied
        before anything it claims)."""
        if later:
            self.unsaved.append((_UNHAND, (job_id,)))
        elif cancelled:
            self._write("UPDATE jobs SET status = 'cancelled', ended = ?, "
                        "note = 'cancelled before it started', attempt = attempt - 1 "
                        "WHERE id = ? AND status = 'handed'", (time.time(), job_id))
        else:
            self._write(_UNHAND, (job_id,))

    def in_turn(self) -> bool:
        """Has this turn written anything yet (its transaction begun)?"""
        return self.db.in_transaction

    def restore_idents(self, idents: Dict[int, str]) -> None:
        """Give rows the identity keys their folders recorded (``hog rebuild``), in place
        of the keys derived from source positions; a key another row was given by
        position moves to the row whose folder recorded it."""
        if not idents:
            return
        with self.transaction():
            for job_id, ident in idents.items():
                self.db.execute("UPDATE jobs SET ident = NULL WHERE ident = ? AND id != ?",
                                (ident, job_id))
                self.db.execute("UPDATE jobs SET ident = ? WHERE id = ?", (ident, job_id))

    def restore_usage(self, usage: Dict[int, Dict[str, float]]) -> None:
        """Give rows what their last attempts used, as their folders recorded it (``hog
        rebuild``): ``model.USAGE_FIELDS`` by name."""
        with self.transaction():
            for job_id, figures in usage.items():
                names = [k for k in USAGE_FIELDS if k in figures]
                if names:
                    self.db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in names)} "
                                    "WHERE id = ?", (*(figures[k] for k in names), job_id))

    def started(self, job_id: int, pid: int, started: float,
                gpus: Optional[str] = None, proc: Optional[JobProcess] = None,
                handed: bool = False) -> bool:
        """The job runs (``gpus``: the GPU ids, when known only now, as with Ray;
        ``proc``: its process identity, where it runs on this machine). ``handed``: a
        job handed to its slot ahead, which its slot started: it is running from now
        (one statement); False if it was cancelled meanwhile (``hog kill``)."""
        pgid, sid, start = (None, None, None) if proc is None else \
            (proc.pgid, proc.sid, proc.start)
        sets = "pid = ?, started = ?, gpus = coalesce(?, gpus), pgid = ?, sid = ?, " \
            "proc_start = ?"
        cur = self._write(f"UPDATE jobs SET status = 'running', {sets} WHERE id = ? "
                          "AND status = 'handed'" if handed else
                          f"UPDATE jobs SET {sets} WHERE id = ?",
                          (pid, started, gpus, pgid, sid, start, job_id))
        return cur is None or cur.rowcount == 1

    def ended(self, job_id: int, status: Status, exit_code: Optional[int],
              signal: Optional[str], started: float, ended: float, note: str = "",
              requeue: bool = False, usage: Usage = NO_USAGE,
              start: Optional[Tuple[int, Optional[str], Optional[JobProcess]]] = None
              ) -> None:
        """Record how an attempt ended (and what it used); ``requeue``: queue the job for
        another attempt. ``start``: its pid, GPU ids and process identity when its start
        (``started``) was not stored yet: stored with its end, in one statement."""
        final = "queued" if requeue else status.value
        args = (final, exit_code, signal, started, ended,
                note or ("" if not requeue else f"attempt ended {status.value}; retrying"),
                requeue, *usage.fields().values())
        sets = ""
        if start is not None:
            pid, gpus, proc = start
            sets = ", pid = ?, gpus = coalesce(?, gpus), pgid = ?, sid = ?, proc_start = ?"
            args += (pid, gpus) + ((None, None, None) if proc is None else
                                   (proc.pgid, proc.sid, proc.start))
        self._write(
            "UPDATE jobs SET status = ?, exit_code = ?, signal = ?, started = ?, ended = ?, "
            "note = ?, runner = CASE WHEN ? THEN NULL ELSE runner END, cpu_user_s = ?, "
            "cpu_system_s = ?, max_rss_bytes = ?, gpu_mem_peak_bytes = ?, gpu_util_mean = ?"
            f"{sets} WHERE id = ?", args + (job_id,))

    def set_status(self, job_id: int, status: Status, note: str = "") -> None:
        self._write("UPDATE jobs SET status = ?, note = ?, ended = ? WHERE id = ?",
                        (status.value, note, time.time(), job_id))

    # ----------------------------------------------------------- retry
    def retry(self, job_ids: Iterable[int], note: str = "retry requested") -> List[int]:
        """``hog retry``: queue finished jobs again; returns the ids that were. A job that
        left the source is from then on kept like a job added with ``hog add`` (it runs,
        and counts as in the source) until a reading of the source lists it again."""
        done = []
        with self.transaction():
            for jid in job_ids:
                cur = self.db.execute(
                    f"UPDATE jobs SET status = 'queued', cancel = 0, note = ?, "
                    f"seen = CASE WHEN {IN_SOURCE_SQL} THEN seen END "
                    f"WHERE id = ? AND status IN ({','.join('?' * len(RERUNNABLE))})",
                    (note, jid, *RERUNNABLE))
                if cur.rowcount:
                    done.append(jid)
        return done


_UNHAND = ("UPDATE jobs SET status = 'queued', runner = NULL, slot = NULL, started = NULL, "
           "attempt = attempt - 1 WHERE id = ? AND status = 'handed'")


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
