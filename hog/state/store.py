"""The store: an SQLite database in ``<output_dir>/.hog/`` that is the single source
of truth for a sweep. ``hog/state`` alone knows SQL.

It is one connection (``state.db``) with a role per caller, each in its module:

- ``state.jobs.Jobs``: the queue's jobs (ingest, add, claim, started, ended,
  retry, recover), written by the runner and by ``hog add`` / ``hog retry``;
- ``state.runners.Runners``: a runner's own row and heartbeat;
- ``state.runners.Mailbox``: requests between a verb in one shell and a runner in
  another (drain, kill, cancel, a new --gpus);
- ``state.reading.SweepReader``: the read-only queries of views and results.

``Store`` combines them over the one writable connection the runner and the verbs
hold, so their calls (``store.claim``, ``store.batch()``, ``store.counts``, ...) read
as before. Views open a ``SweepReader`` instead, with ``readonly=True``.

The names callers import from here (rows, constants, ``runner_alive``) are
re-exported from the modules that own them.
"""
from hog.state.db import DB_NAME, Database, check_private
from hog.state.jobs import Jobs
from hog.state.reading import SweepReader
from hog.state.rows import JobRow, ResultRow, RunnerRow, job_spec
from hog.state.runners import HEARTBEAT_S, Mailbox, Runners, runner_alive
from hog.state.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["Store", "DB_NAME", "MIGRATIONS", "SCHEMA_VERSION", "check_private", "JobRow",
           "ResultRow", "RunnerRow", "job_spec", "HEARTBEAT_S", "runner_alive"]


class Store(Jobs, Runners, Mailbox, SweepReader):
    """One writable connection to a sweep's database, with every role's methods."""

    def __init__(self, state_dir: str, create: bool = True, readonly: bool = False):
        """``readonly``: the connection of a ``SweepReader`` (for callers that still ask
        a ``Store`` for it); implies ``create=False``."""
        Database.__init__(self, state_dir, create=create, readonly=readonly)
