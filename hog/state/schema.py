"""The queue's schema, version by version: ``MIGRATIONS[N]`` makes a database of
version N-1 one of version N (``Database`` applies what a file lacks, in one
transaction, when it opens it). A new version is a new entry here, never an edit of
an old one: ``tests/data/store-v1.sqlite`` is a real version-1 queue that every later
version must take. A new, empty queue is made from ``FRESH``, the latest schema at
once, which a new version changes too (``tests/test_schema.py`` holds them equal).
"""
from typing import Dict

SCHEMA_VERSION = 9

# The schema of each version, and how to go from version N-1 to N. A database of
# any earlier version is migrated in one transaction when it is opened. The columns
# of version 1's tables are named once, for it and for FRESH (below).
JOBS_V1 = """
    id          INTEGER PRIMARY KEY,          -- N of the job folder <prefix>N
    source_pos  INTEGER UNIQUE,               -- position in the sweep's source, NULL if added
    name        TEXT,
    command     TEXT NOT NULL,
    spec        TEXT NOT NULL DEFAULT '{}',   -- JSON: gpus, resources, env, cwd, timeout, ...
    origin      TEXT NOT NULL DEFAULT '',     -- file:line it came from
    priority    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'queued',
    attempt     INTEGER NOT NULL DEFAULT 0,   -- attempts started so far
    runner      INTEGER,
    slot        INTEGER,
    gpus        TEXT,
    pid         INTEGER,
    exit_code   INTEGER,
    signal      TEXT,
    started     REAL,
    ended       REAL,
    added       REAL NOT NULL,
    cancel      INTEGER NOT NULL DEFAULT 0,   -- 1: a user asked to cancel it
    note        TEXT NOT NULL DEFAULT ''"""
RUNNERS_V1 = """
    id           INTEGER PRIMARY KEY,
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    proc_start   TEXT NOT NULL DEFAULT '',    -- /proc start time, tells a reused pid apart
    gpus         TEXT NOT NULL,
    started      REAL NOT NULL,
    heartbeat    REAL NOT NULL,
    ended        REAL,
    request      TEXT,                        -- 'drain' | 'kill' from hog stop
    gpus_request TEXT                         -- a new --gpus spec from hog gpus DIR"""
SCHEMA_V1 = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE jobs (
{JOBS_V1[1:]}
);
CREATE INDEX jobs_by_status ON jobs (status, priority DESC, id);
CREATE INDEX jobs_by_name ON jobs (name);
CREATE TABLE runners (
{RUNNERS_V1[1:]}
);
"""
# Version 2: a job is identified by content, not by its position in the source
# (state/identity.py). Each job read from a source has its identity key ``ident`` (NULL
# for jobs added with hog add or from a watched directory), the ``digest`` of its
# definition, and ``seen``: the number of the last reading of the source that listed
# it (meta 'reading': the reading under way or last begun, 'read': the last one read
# to its end). ``source_pos`` is where the job was in the latest reading that listed
# it (NULL once another job took its place). Rows of version 1 get the keys their
# source gives them (KEY_ROWS_BY_POSITION), as listed by reading 1.
SCHEMA_V2 = """
ALTER TABLE jobs ADD COLUMN ident TEXT;
ALTER TABLE jobs ADD COLUMN digest TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN seen INTEGER;
CREATE UNIQUE INDEX jobs_by_ident ON jobs (ident);
INSERT OR IGNORE INTO meta (key, value) VALUES ('reading', '1');
INSERT OR IGNORE INTO meta (key, value) VALUES ('read', '1')
"""
# Identity keys for rows that have a source position but no key yet (an older schema's,
# or rows restored from their folders): identical jobs are counted in source order, as
# ``state.identity.Occurrences`` counts them; each row counts as listed by the current
# reading. ``hog_spec_digest`` and ``hog_given_name`` are ``state.identity``'s
# ``spec_digest`` and ``stored_given_name``, registered on every writable connection.
KEY_ROWS_BY_POSITION = """
CREATE TEMP TABLE job_keys (id INTEGER PRIMARY KEY, ident TEXT, digest TEXT NOT NULL);
INSERT INTO temp.job_keys (id, ident, digest)
SELECT id,
       CASE WHEN source_pos IS NULL THEN NULL
            WHEN given IS NOT NULL THEN 'n:' || (row_number() OVER w - 1) || ':' || given
            ELSE 'd:' || (row_number() OVER w - 1) || ':' || d END,
       d
FROM (SELECT id, source_pos, hog_spec_digest(command, spec) AS d,
             hog_given_name(name, (SELECT value FROM meta WHERE key = 'source')) AS given
      FROM jobs WHERE ident IS NULL)
WINDOW w AS (PARTITION BY source_pos IS NULL, given IS NULL, coalesce(given, d)
             ORDER BY source_pos, id);
UPDATE jobs SET ident = (SELECT k.ident FROM temp.job_keys k WHERE k.id = jobs.id),
                digest = (SELECT k.digest FROM temp.job_keys k WHERE k.id = jobs.id),
                seen = CASE WHEN source_pos IS NULL THEN NULL ELSE coalesce(
                    (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'reading'), 1) END
WHERE id IN (SELECT id FROM temp.job_keys);
DROP TABLE temp.job_keys
"""
# Scripts are run statement by statement (``Database._execute_script``): a trigger's
# body may hold ";", SQL comments must not.

# Version 3: a running job's process group, session and kernel start time (its pid is
# in ``pid``), recorded as it starts: what recovery ends after its runner died.
SCHEMA_V3 = """
ALTER TABLE jobs ADD COLUMN pgid INTEGER;
ALTER TABLE jobs ADD COLUMN sid INTEGER;
ALTER TABLE jobs ADD COLUMN proc_start TEXT
"""
# Statements are split on ";", so comments in them must not hold one.

# Version 4: the queue counts its jobs itself. ``job_counts`` holds, for each status
# and each reading of the source that last listed a job (``seen``; -1 for jobs that
# count as in the source whatever is read: ``ident`` or ``seen`` NULL), how many jobs
# there are; triggers keep it in the transaction of every insert, delete and change of
# ``status``, ``ident`` or ``seen``, so counts, the jobs that left the source and the
# runnable ones are read without a scan of the jobs (``state.reading``); and
# ``jobs_by_status_id`` gives the first jobs of a status by number (``hog status``'s
# running and failed jobs) without sorting every job of that status. A status
# nobody listed before gets its row when the first job takes it. Rows of an older
# version are counted once, here.
def _reading_of(row: str) -> str:
    return f"CASE WHEN {row}.ident IS NULL OR {row}.seen IS NULL THEN -1 ELSE {row}.seen END"


def _count(row: str, delta: str) -> str:
    return (f"INSERT INTO job_counts (status, seen, n) VALUES ({row}.status, "
            f"{_reading_of(row)}, {delta}) ON CONFLICT (status, seen) DO UPDATE "
            f"SET n = n + excluded.n")


COUNTS_TABLE = """CREATE TABLE job_counts (
    status TEXT NOT NULL,
    seen   INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (status, seen)
) WITHOUT ROWID"""
COUNT_TRIGGERS = f"""CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
    {_count("new", "1")};
END;
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
    {_count("old", "-1")};
END;
CREATE TRIGGER job_counts_update AFTER UPDATE OF status, ident, seen ON jobs
WHEN old.status IS NOT new.status OR ({_reading_of("old")}) != ({_reading_of("new")})
BEGIN
    {_count("old", "-1")};
    {_count("new", "1")};
END"""

SCHEMA_V4 = f"""
CREATE INDEX jobs_by_status_id ON jobs (status, id);
{COUNTS_TABLE};
INSERT INTO job_counts (status, seen, n)
SELECT status, {_reading_of("jobs")}, count(*) FROM jobs GROUP BY 1, 2;
{COUNT_TRIGGERS}
"""
# Version 5: what the latest attempt of a job used (``model.Usage``): CPU seconds and
# peak resident memory from the kernel's accounting, GPU memory peak and utilisation
# from the GPU monitor; NULL where not known.
SCHEMA_V5 = """
ALTER TABLE jobs ADD COLUMN cpu_user_s REAL;
ALTER TABLE jobs ADD COLUMN cpu_system_s REAL;
ALTER TABLE jobs ADD COLUMN max_rss_bytes INTEGER;
ALTER TABLE jobs ADD COLUMN gpu_mem_peak_bytes INTEGER;
ALTER TABLE jobs ADD COLUMN gpu_util_mean REAL
"""
# Version 6: what a runner can run and whether it waits for work, for the other runners
# of the queue to tell whether a job this runner cannot run has a runner that might
# (engine/eligibility.py): ``keep_alive`` (1: --keep-alive), ``capacity`` (JSON: cpu_slots,
# resources; '' when unknown, as for an older runner), and a queued job's ``waiting``: what
# it waits for (a runner with GPU 3, ...), shown by hog status (``jobs_waiting``: those
# jobs, without a scan of every queued one).
SCHEMA_V6 = """
ALTER TABLE runners ADD COLUMN keep_alive INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runners ADD COLUMN capacity TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN waiting TEXT;
CREATE INDEX jobs_waiting ON jobs (id) WHERE waiting IS NOT NULL
"""
# Version 7: the history of each runner's slots (``hog gpus DIR SPEC`` changes them while
# it runs): its ``--gpus`` labels from ``at`` on, recorded when it starts and at each
# change applied, so that the report's GPU-slot capacity follows them over time.
SCHEMA_V7 = """
CREATE TABLE slot_changes (
    runner  INTEGER NOT NULL,
    at      REAL NOT NULL,
    gpus    TEXT NOT NULL
);
CREATE INDEX slot_changes_by_runner ON slot_changes (runner, at)
"""
# Version 8: the run order is indexed for the queued jobs alone (a partial index, which
# the runner's reading of the queue, ``status = 'queued' ... ORDER BY priority DESC,
# id``, searches): a job's later changes of status (handed, running, its end) no longer
# move an entry of it there; rows of any status are found by ``jobs_by_status_id``.
# (The three changes of a short job cost the runner's SQLite 18 % less, measured.)
SCHEMA_V8 = """
DROP INDEX jobs_by_status;
CREATE INDEX jobs_queue ON jobs (priority DESC, id) WHERE status = 'queued'
"""
# Version 9: the jobs that ended, by when they ended (a partial index: a job's end adds
# its one entry), so that the latest finished jobs (``hog status --json``) are read from
# its end instead of sorting every finished job (13 ms at 20,000 jobs, 0.6 s at 10^6).
SCHEMA_V9 = """
CREATE INDEX jobs_by_end ON jobs (ended) WHERE ended IS NOT NULL
"""
# A new, empty database is made at the latest version in one go: FRESH is what the
# migrations above make of an empty one. Each statement of a script makes SQLite read
# the schema again, so the 65 of the migrations cost a new queue 2-3 ms before its first
# job, these 16 a fifth of that. tests/test_schema.py checks that both give the same
# schema, meta and counts; a new version changes FRESH with its migration.
FRESH = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE jobs (
{JOBS_V1[1:]}
  , ident TEXT, digest TEXT NOT NULL DEFAULT '', seen INTEGER,
    pgid INTEGER, sid INTEGER, proc_start TEXT,
    cpu_user_s REAL, cpu_system_s REAL, max_rss_bytes INTEGER, gpu_mem_peak_bytes INTEGER,
    gpu_util_mean REAL, waiting TEXT
);
CREATE INDEX jobs_by_name ON jobs (name);
CREATE TABLE runners (
{RUNNERS_V1[1:]}
  , keep_alive INTEGER NOT NULL DEFAULT 0, capacity TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX jobs_by_ident ON jobs (ident);
INSERT INTO meta (key, value) VALUES ('reading', '1');
INSERT INTO meta (key, value) VALUES ('read', '1');
CREATE INDEX jobs_by_status_id ON jobs (status, id);
{COUNTS_TABLE};
{COUNT_TRIGGERS};
CREATE INDEX jobs_waiting ON jobs (id) WHERE waiting IS NOT NULL;
{SCHEMA_V7};
CREATE INDEX jobs_queue ON jobs (priority DESC, id) WHERE status = 'queued';
{SCHEMA_V9}"""
MIGRATIONS: Dict[int, str] = {1: SCHEMA_V1, 2: SCHEMA_V2 + ";" + KEY_ROWS_BY_POSITION,
                              3: SCHEMA_V3,
                              4: SCHEMA_V4, 5: SCHEMA_V5, 6: SCHEMA_V6, 7: SCHEMA_V7,
                              8: SCHEMA_V8, 9: SCHEMA_V9}
