"""Shared helpers for the persistent-queue tests (``tests/test_queue_*.py``).

Everything here works on real processes and a real SQLite file:

- ``hq`` (the fixture every test uses) gives the test a unique ``HOG_TEST_TAG``;
  every hog it starts, and so every producer, consumer, job and process a job
  starts, carries it in its environment. After the test, ``/proc/*/environ`` is
  scanned for the tag: a process still alive is a leak, fails the test, and is
  killed by PID.
- hog always runs as ``python3 -m hog`` with this worktree first on
  ``PYTHONPATH`` (an older hog may be pip-installed elsewhere).
- Waiting is done by polling a condition against a deadline, never by a fixed
  sleep.
"""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent          # the worktree that holds hog/
if sys.path[0] != str(ROOT):                            # this worktree's hog, not an installed one
    sys.path.insert(0, str(ROOT))
DATA = Path(__file__).resolve().parent / "data"

_CLEAN_VARS = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "HOG_JOB_INDEX", "HOG_JOB_NAME",
               "HOG_JOB_DIR", "HOG_SLOT", "HOG_ATTEMPT", "HOG_DETACHED", "PYTHONUNBUFFERED")


from .conftest import Background, info, marker, markers, write  # noqa: F401
from .conftest import out as job_out  # noqa: F401
from .procs import (TAG_VAR, children_of, cpu_ticks, describe_pid, is_zombie, pid_alive,  # noqa: F401
                    proc_stat, read_environ, session_of, tagged_pids, wait_for)


# --------------------------------------------------------------------- hog
BgHog = Background


class HogSession:
    """One test's tag, working directory and the hog processes it started."""

    def __init__(self, tmp_path: Path):
        self.tag = f"hogq-{uuid.uuid4().hex}"
        self.tmp = Path(tmp_path)
        self.started: List[subprocess.Popen] = []
        self._n = 0

    # ------------------------------------------------------------ environment
    def env(self, extra: Optional[Dict[str, Optional[str]]] = None) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _CLEAN_VARS}
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + old if old else "")
        env[TAG_VAR] = self.tag
        for key, value in (extra or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    @staticmethod
    def argv(*args) -> List[str]:
        return [sys.executable, "-m", "hog", *[str(a) for a in args]]

    # ------------------------------------------------------------ running hog
    def run(self, *args, timeout: float = 60, cwd=None, env=None) -> subprocess.CompletedProcess:
        """Run hog to completion; stdout and stderr captured as text."""
        try:
            return subprocess.run(self.argv(*args), cwd=str(cwd or self.tmp), env=self.env(env),
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"hog {' '.join(map(str, args))} did not finish within {timeout}s\n"
                        f"stdout:\n{e.stdout}\nstderr:\n{e.stderr}")

    def start(self, *args, cwd=None, env=None, new_session: bool = True) -> BgHog:
        """Start hog in the background (in its own session by default)."""
        self._n += 1
        out_path = self.tmp / f"hog-{self._n}.stdout"
        err_path = self.tmp / f"hog-{self._n}.stderr"
        out, err = open(out_path, "wb"), open(err_path, "wb")
        proc = subprocess.Popen(self.argv(*args), cwd=str(cwd or self.tmp), env=self.env(env),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=new_session)
        self.started.append(proc)
        return BgHog(proc, out_path, err_path, (out, err))

    def popen(self, argv: List[str], **kw) -> subprocess.Popen:
        """Any other process the test starts (tagged too, and cleaned up)."""
        kw.setdefault("env", self.env())
        kw.setdefault("cwd", str(self.tmp))
        proc = subprocess.Popen(argv, **kw)
        self.started.append(proc)
        return proc

    def status(self, directory, timeout: float = 30) -> dict:
        """``hog status DIR --json``, parsed."""
        r = self.run("status", directory, "--json", timeout=timeout)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    # ------------------------------------------------------------ processes
    def pids(self) -> List[int]:
        return tagged_pids(self.tag)

    def job_pids(self) -> List[int]:
        """Live processes started by a hog job of this test (they carry HOG_JOB_INDEX)."""
        return tagged_pids(self.tag, also=[b"HOG_JOB_INDEX="])

    def wait_no_processes(self, timeout: float = 10, jobs_only: bool = False) -> None:
        find = self.job_pids if jobs_only else self.pids
        deadline = time.monotonic() + timeout
        left = find()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = find()
        assert not left, ("processes still alive:\n  "
                          + "\n  ".join(describe_pid(p) for p in left))

    def cleanup(self) -> List[str]:
        """Stop what the test left behind; return descriptions of leaked processes."""
        for proc in self.started:          # hog processes still running: stop them
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        deadline = time.monotonic() + 5.0  # processes on their way out get a moment
        left = self.pids()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self.pids()
        described = [describe_pid(p) for p in left]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return described


@pytest.fixture
def hq(tmp_path):
    """The test's hog session; fails the test if a tagged process outlives it."""
    session = HogSession(tmp_path)
    yield session
    leaked_before = [p for p in session.started if p.poll() is None]
    leaks = session.cleanup()
    problems = []
    if leaked_before:
        problems.append("hog processes the test left running: "
                        + ", ".join(str(p.pid) for p in leaked_before))
    if leaks:
        problems.append("processes left running after the test:\n  " + "\n  ".join(leaks))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# --------------------------------------------------------------------- files
def job_file(path: Path, lines: Iterable[str]) -> Path:
    return write(path, "".join(line + "\n" for line in lines))


def job_dir(out: Path, index: int, prefix: str = "job_") -> Path:
    return Path(out) / f"{prefix}{index}"


def job_dirs(out: Path, prefix: str = "job_") -> List[Path]:
    out = Path(out)
    if not out.exists():
        return []
    found = [p for p in out.iterdir()
             if p.is_dir() and p.name.startswith(prefix) and p.name[len(prefix):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(prefix):]))


def lines_of(path: Path) -> List[str]:
    path = Path(path)
    return path.read_text().split() if path.exists() else []


def counts_of(path: Path) -> Dict[str, int]:
    """How many times each whitespace-separated word occurs in a file."""
    found: Dict[str, int] = {}
    for word in lines_of(path):
        found[word] = found.get(word, 0) + 1
    return found


# --------------------------------------------------------------------- the store
def db_path(out: Path) -> Path:
    return Path(out) / ".hog" / "hog.sqlite"


def connect(out: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(db_path(out)), timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 30000")
    db.row_factory = sqlite3.Row
    return db


def query(out: Path, sql: str, args: tuple = ()) -> List[sqlite3.Row]:
    db = connect(out)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _query_soon(out: Path, sql: str, args: tuple = ()) -> List[sqlite3.Row]:
    """``query``, or [] while the store does not exist yet (or is being created)."""
    if not db_path(out).exists():
        return []
    try:
        return query(out, sql, args)
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
        raise


def job_rows(out: Path) -> Dict[int, sqlite3.Row]:
    """The store's jobs by id ({} before the store exists)."""
    return {r["id"]: r for r in _query_soon(out, "SELECT * FROM jobs ORDER BY id")}


def runner_rows(out: Path) -> List[sqlite3.Row]:
    return _query_soon(out, "SELECT * FROM runners ORDER BY id")


def status_counts(out: Path) -> Dict[str, int]:
    return {r[0]: r[1] for r in _query_soon(out, "SELECT status, count(*) FROM jobs "
                                                 "GROUP BY status")}


def running_rows(out: Path) -> List[sqlite3.Row]:
    """Jobs the store says are running and whose process has started (pid known)."""
    return [r for r in job_rows(out).values() if r["status"] == "running" and r["pid"]]


def host() -> str:
    return socket.gethostname()


def dead_pid() -> int:
    """A pid no process has now (a child that has been reaped)."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid
