"""The test harness: every test's tag, hog's environment, running hog (to the end or
in the background), job files and folders, the store, and the scan for leaks.

Everything works on real processes and real files:

- Every test gets a unique ``HOG_TEST_TAG`` in its environment (the autouse
  fixture in conftest.py opens a ``Session``), so every process hog starts (its
  producer and consumers, every job and everything a job starts) carries it.
  After the test, ``/proc/*/environ`` is scanned for the tag: anything still alive
  is a leak, fails the test, and is killed by PID (``Session.finish``).
- hog always runs as ``python3 -m hog`` with this checkout first on ``PYTHONPATH``
  (an older hog may be installed elsewhere).
- Waiting is done by polling a condition against a deadline (``wait_for``).
- Job files and folders have one signature: ``job_file(folder, *lines, name=)``
  writes ``folder/name``; ``job_dir(folder, index, output=)`` is
  ``folder/output/job_INDEX``.
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
from typing import Callable, Dict, Iterable, List, Optional

import pytest
import yaml

CHECKOUT = Path(__file__).resolve().parent.parent       # the checkout that holds hog/
if sys.path[0] != str(CHECKOUT):                        # this hog, not an installed one
    sys.path.insert(0, str(CHECKOUT))
DATA = Path(__file__).resolve().parent / "data"
TAG_VAR = "HOG_TEST_TAG"
MARKERS = ("SUCCESS", "FAILURE")
INFO_FIELDS = ("name", "index", "command", "gpus", "slot", "host", "pid", "attempt",
               "status", "exit_code", "signal", "started", "ended", "duration_s",
               "origin", "source_pos", "options", "ident")
# the last fields of a final INFO (None where not measured); the GPU ones follow where known
USAGE_INFO_FIELDS = ("cpu_user_s", "cpu_system_s", "max_rss_bytes")
# what a test must not inherit from the shell (or from a hog job) it runs in
CLEAN_VARS = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "HOG_JOB_INDEX", "HOG_JOB_NAME",
              "HOG_JOB_DIR", "HOG_SLOT", "HOG_ATTEMPT", "HOG_DETACHED", "PYTHONUNBUFFERED")
LEAK_GRACE_S = 3.0          # processes on their way out when a test ends get this long


# --------------------------------------------------------------------- /proc
def read_environ(pid: int) -> Optional[List[bytes]]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return None


def proc_stat(pid: int) -> Optional[List[str]]:
    """Fields of /proc/PID/stat after the command name: [0] is the state, [1] the ppid,
    [3] the session id, [11]/[12] utime/stime."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].decode().split()


def is_zombie(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is None or fields[0] in ("Z", "X")


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (PID 1 of some containers never reaps orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)


def session_of(pid: int) -> int:
    return int(proc_stat(pid)[3])


def children_of(pid: int) -> List[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = proc_stat(int(name))
            if fields and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
                found.append(int(name))
    return found


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (0 if it is gone)."""
    fields = proc_stat(pid)
    return 0 if fields is None else int(fields[11]) + int(fields[12])


def pids_whose_env(test: Callable[[List[bytes]], bool]) -> List[int]:
    """Live (not zombie) processes, other than this one, whose environment (a list of
    b"KEY=value" entries) passes ``test``."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        env = read_environ(int(name))
        if env and test(env) and not is_zombie(int(name)):
            found.append(int(name))
    return found


def tagged_pids(tag: str, also: Iterable[bytes] = ()) -> List[int]:
    """Live processes whose environment holds HOG_TEST_TAG=tag and each entry
    of ``also`` (a prefix such as b"HOG_JOB_INDEX=")."""
    needle = f"{TAG_VAR}={tag}".encode()
    also = list(also)
    return pids_whose_env(lambda env: needle in env and all(
        any(e.startswith(a) for e in env) for a in also))


def job_pids(tag: str) -> List[int]:
    """Live processes started by a hog job (they carry HOG_JOB_INDEX) of this test."""
    return tagged_pids(tag, also=[b"HOG_JOB_INDEX="])


def describe_pid(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f"{pid}: " + f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return str(pid)


def where_stuck(pids: Iterable[int]) -> str:
    """For a hang: each process's state, parent and kernel wait channel; then every hog
    process among them (its environment has PYTHONFAULTHANDLER, see ``hog_env``) is sent
    SIGABRT, so that its threads' Python stacks go to its stderr. Kills them."""
    lines = []
    for pid in pids:
        fields = proc_stat(pid) or ["?", "?"]
        try:
            with open(f"/proc/{pid}/wchan") as f:
                wchan = f.read().strip()
        except OSError:
            wchan = "?"
        lines.append(f"{describe_pid(pid)} [state {fields[0]}, ppid {fields[1]}, "
                     f"waits in {wchan}]")
    for pid in pids:
        if " -m hog" in describe_pid(pid):
            try:
                os.kill(pid, signal.SIGABRT)
            except ProcessLookupError:
                pass
    time.sleep(1.0)
    return "\n".join(lines)


# --------------------------------------------------------------------- waiting
def wait_for(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition"):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------- running hog
def hog_env(extra: Optional[Dict[str, Optional[str]]] = None) -> Dict[str, str]:
    """The test's environment (its tag, this checkout first on PYTHONPATH: see
    ``open_session``); ``extra`` sets variables, or removes those it maps to None."""
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    env["PYTHONFAULTHANDLER"] = "1"         # a hang's stacks: see ``where_stuck``
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def hog_argv(*args) -> List[str]:
    return [sys.executable, "-m", "hog", *[str(a) for a in args]]


def run_hog(cwd, *args, timeout: float = 60, env: Optional[Dict[str, Optional[str]]] = None,
            argv0: Optional[List[str]] = None) -> subprocess.CompletedProcess:
    """Run hog to completion in ``cwd``; stdout and stderr are captured as text."""
    argv = (argv0 + [str(a) for a in args]) if argv0 else hog_argv(*args)
    return subprocess.run(argv, cwd=str(cwd), env=hog_env(env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


class Background:
    """A hog running in the background; its stdout/stderr go to files."""

    def __init__(self, proc: subprocess.Popen, out_path: Path, err_path: Path, files=()):
        self.proc = proc
        self.pid = proc.pid
        self.out_path = out_path
        self.err_path = err_path
        self._files = files

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def signal_group(self, sig: int) -> None:
        os.killpg(self.pid, sig)

    def wait(self, timeout: float = 30) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            tagged = tagged_pids(os.environ.get(TAG_VAR, ""))
            stuck = where_stuck(dict.fromkeys([self.pid] + tagged))
            pytest.fail(f"hog (pid {self.pid}) did not exit within {timeout}s\n"
                        f"its processes:\n{stuck}\n"
                        f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}")
        for f in self._files:
            f.close()
        return rc

    def wait_output(self, text: str, timeout: float = 10) -> None:
        wait_for(lambda: text.lower() in self.output.lower(), timeout,
                 what=f"{text!r} in hog's output")


def start_hog(cwd, *args, env=None, new_session: bool = True,
              must_end: bool = False) -> Background:
    """hog started in the background in ``cwd`` (in a session of its own by default);
    its output goes to ``cwd/hog-N.stdout`` and ``.stderr``. The leak scan stops it
    if the test did not (see ``track``)."""
    cwd = Path(cwd)
    n = len(list(cwd.glob("hog-*.stdout")))
    out_path, err_path = cwd / f"hog-{n}.stdout", cwd / f"hog-{n}.stderr"
    out, err = open(out_path, "wb"), open(err_path, "wb")
    proc = subprocess.Popen(hog_argv(*args), cwd=str(cwd), env=hog_env(env),
                            stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            start_new_session=new_session)
    track(proc, must_end)
    return Background(proc, out_path, err_path, (out, err))


def track(proc: subprocess.Popen, must_end: bool = False) -> subprocess.Popen:
    """Have the leak scan stop ``proc`` (a process the test started) if it is still
    running when the test ends; with ``must_end`` that also fails the test."""
    if _current is not None:
        _current.started.append((proc, must_end))
    return proc


# --------------------------------------------------------------------- a test's session
class Session:
    """One test's tag, working directory and the processes it started.

    The autouse fixture opens one per test and ``finish`` is the leak scan; the ``hq``
    fixture hands it to the store tests, whose hogs run in ``tmp`` and must have ended
    (been waited for) by the end of the test."""

    def __init__(self, tmp: Optional[Path] = None):
        self.tag = f"hogtest-{uuid.uuid4().hex}"
        self.tmp = tmp
        self.started: List[tuple] = []

    # ------------------------------------------------------------ running hog
    env = staticmethod(hog_env)
    argv = staticmethod(hog_argv)

    def run(self, *args, timeout: float = 60, cwd=None, env=None) -> subprocess.CompletedProcess:
        """Run hog to completion in ``tmp``; fail the test if it does not end in time."""
        try:
            return run_hog(cwd or self.tmp, *args, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"hog {' '.join(map(str, args))} did not finish within {timeout}s\n"
                        f"stdout:\n{e.stdout}\nstderr:\n{e.stderr}")

    def start(self, *args, cwd=None, env=None, new_session: bool = True) -> Background:
        """hog in the background in ``tmp``; the test must wait for it to end."""
        return start_hog(cwd or self.tmp, *args, env=env, new_session=new_session,
                         must_end=True)

    def popen(self, argv: List[str], **kw) -> subprocess.Popen:
        """Any other process the test starts (tagged too); it must have ended too."""
        kw.setdefault("env", hog_env())
        kw.setdefault("cwd", str(self.tmp))
        return track(subprocess.Popen(argv, **kw), must_end=True)

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
        return job_pids(self.tag)

    def wait_no_processes(self, timeout: float = 10, jobs_only: bool = False) -> None:
        find = self.job_pids if jobs_only else self.pids
        deadline = time.monotonic() + timeout
        left = find()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = find()
        assert not left, ("processes still alive:\n  "
                          + "\n  ".join(describe_pid(p) for p in left))

    # ------------------------------------------------------------ the leak scan
    def finish(self) -> List[str]:
        """Stop what the test left running; return one line per problem (none: clean).

        A process the test had to wait for (``must_end``) and did not is a problem and is
        SIGKILLed, so that what it started shows up as leaks too; any other is asked to
        end (SIGTERM, then SIGKILL). Then every process that carries the tag and is
        still alive after LEAK_GRACE_S is a leak, and is killed by PID."""
        problems = []
        for proc, must_end in self.started:
            if proc.poll() is not None:
                continue
            if must_end:
                problems.append(f"a process the test left running: {describe_pid(proc.pid)}")
                _kill(proc.pid)
            else:
                proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        deadline = time.monotonic() + LEAK_GRACE_S
        left = self.pids()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self.pids()
        problems += [f"left running after the test: {describe_pid(p)}" for p in left]
        for pid in left:
            _kill(pid)
        return problems


_current: Optional[Session] = None


def open_session(monkeypatch: pytest.MonkeyPatch) -> Session:
    """The session of the test that starts now: its tag and this checkout's hog in the
    environment, and nothing of CLEAN_VARS (the autouse fixture's; undone after it)."""
    global _current
    _current = Session()
    monkeypatch.setenv(TAG_VAR, _current.tag)
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(CHECKOUT) + (os.pathsep + old if old else ""))
    for var in CLEAN_VARS:
        monkeypatch.delenv(var, raising=False)
    return _current


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------- job files and folders
def write(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def job_file(folder: Path, *lines: str, name: str = "jobs.txt") -> Path:
    """``folder/name`` with one job per line."""
    return write(Path(folder) / name, "".join(line + "\n" for line in lines))


def job_dir(folder: Path, index: int, output: str = "output", prefix: str = "job_") -> Path:
    """The folder of job ``index`` of a sweep run in ``folder`` with --output_dir ``output``."""
    return Path(folder) / output / f"{prefix}{index}"


def job_dirs(folder: Path, output: str = "output", prefix: str = "job_") -> List[Path]:
    """The job folders in ``folder/output``, by index."""
    root = Path(folder) / output
    if not root.exists():
        return []
    found = [p for p in root.iterdir()
             if p.is_dir() and p.name.startswith(prefix) and p.name[len(prefix):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(prefix):]))


def info(folder: Path) -> dict:
    with open(Path(folder) / "INFO") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), f"INFO of {folder} is not a YAML mapping"
    return data


def markers(folder: Path) -> List[str]:
    return [m for m in MARKERS if (Path(folder) / m).exists()]


def marker(folder: Path) -> str:
    """The one marker of an ended job; fails when there is none or both."""
    found = markers(folder)
    assert len(found) == 1, f"{folder}: expected exactly one marker, found {found}"
    return found[0]


def out(folder: Path) -> str:
    folder = Path(folder)
    return (folder / f"{folder.name}.OUT").read_text()


def err(folder: Path) -> str:
    folder = Path(folder)
    return (folder / f"{folder.name}.ERR").read_text()


def lines_of(path: Path) -> List[str]:
    path = Path(path)
    return path.read_text().split() if path.exists() else []


def counts_of(path: Path) -> Dict[str, int]:
    """How many times each whitespace-separated word occurs in a file."""
    found: Dict[str, int] = {}
    for word in lines_of(path):
        found[word] = found.get(word, 0) + 1
    return found


def max_overlap(spans) -> int:
    """The largest number of (start, end) spans open at one instant."""
    events = []
    for start, end in spans:
        events.append((start, 1))
        events.append((end, -1))
    events.sort(key=lambda e: (e[0], e[1]))   # an end before a start at the same instant
    best = now = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


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
