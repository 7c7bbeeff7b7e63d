"""Shared helpers for the hog test suite.

Every test gets a unique ``HOG_TEST_TAG`` in the environment, so every process hog
starts (its producer and consumers, every job and everything a job starts) carries
it. After the test, ``/proc/*/environ`` is scanned for that tag: anything still
alive is a leak, fails the test, and is killed by PID.
"""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

from .procs import TAG_VAR, pid_alive, tagged_pids, wait_for  # noqa: F401

CHECKOUT = Path(__file__).resolve().parent.parent
MARKERS = ("SUCCESS", "FAILURE")
INFO_FIELDS = ("name", "index", "command", "gpus", "slot", "host", "pid", "attempt",
               "status", "exit_code", "signal", "started", "ended", "duration_s")


# ------------------------------------------------------------------ processes
def job_pids(tag: str) -> List[int]:
    """Live processes started by a hog job (they carry HOG_JOB_INDEX) of this test."""
    return tagged_pids(tag, also=[b"HOG_JOB_INDEX="])


@pytest.fixture
def tag():
    return os.environ[TAG_VAR]


_STARTED: list = []


@pytest.fixture(autouse=True)
def no_leaks(monkeypatch):
    """Give the test a unique tag; afterwards fail if any tagged process is alive."""
    tag = f"hogtest-{uuid.uuid4().hex}"
    monkeypatch.setenv(TAG_VAR, tag)
    # every hog a test starts imports this checkout's hog, whatever else is installed
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(CHECKOUT) + (os.pathsep + old if old else ""))
    for var in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "HOG_JOB_INDEX", "HOG_JOB_NAME",
                "HOG_JOB_DIR", "HOG_SLOT", "HOG_ATTEMPT"):
        monkeypatch.delenv(var, raising=False)
    _STARTED.clear()
    yield tag
    # hog processes the test started and did not wait for: stop them first
    for proc in _STARTED:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    # give processes that are on their way out a moment, then call the rest leaks
    deadline = time.monotonic() + 3.0
    left = tagged_pids(tag)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = tagged_pids(tag)
    described = []
    for pid in left:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            described.append(f"{pid}: {cmdline}")
        except OSError:
            described.append(str(pid))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        pytest.fail("processes left running after the test:\n  " + "\n  ".join(described),
                    pytrace=False)


# ------------------------------------------------------------------ running hog
def hog_env(extra: Optional[Dict[str, Optional[str]]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
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
            pytest.fail(f"hog (pid {self.pid}) did not exit within {timeout}s\n"
                        f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}")
        for f in self._files:
            f.close()
        return rc

    def wait_output(self, text: str, timeout: float = 10) -> None:
        wait_for(lambda: text.lower() in self.output.lower(), timeout,
                 what=f"{text!r} in hog's output")


class Hog(Background):
    """A hog started in the background in ``cwd``; output in ``cwd/hog-N.stdout``."""

    def __init__(self, cwd: Path, args, env=None, new_session: bool = True):
        cwd = Path(cwd)
        n = len(list(cwd.glob("hog-*.stdout")))
        out_path, err_path = cwd / f"hog-{n}.stdout", cwd / f"hog-{n}.stderr"
        out, err = open(out_path, "wb"), open(err_path, "wb")
        proc = subprocess.Popen(hog_argv(*args), cwd=str(cwd), env=hog_env(env),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=new_session)
        _STARTED.append(proc)
        super().__init__(proc, out_path, err_path, (out, err))
        self.cwd = cwd


def track(proc: subprocess.Popen) -> subprocess.Popen:
    """Have the leak check stop ``proc`` (a hog started by hand) if the test did not."""
    _STARTED.append(proc)
    return proc


def start_hog(cwd, *args, env=None, new_session: bool = True) -> Hog:
    return Hog(cwd, args, env=env, new_session=new_session)


# ------------------------------------------------------------------ job files
def write(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def job_file(tmp_path: Path, *lines: str, name: str = "jobs.txt") -> Path:
    return write(tmp_path / name, "".join(line + "\n" for line in lines))


# ------------------------------------------------------------------ job folders
def job_dir(tmp_path: Path, index: int, output: str = "output", prefix: str = "job_") -> Path:
    return Path(tmp_path) / output / f"{prefix}{index}"


def job_dirs(tmp_path: Path, output: str = "output", prefix: str = "job_") -> List[Path]:
    root = Path(tmp_path) / output
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


# ------------------------------------------------------------------ Ray
@pytest.fixture(scope="session")
def ray_netns():
    """A network namespace with only loopback up, for everything Ray (tests/ray_support.py)."""
    from .ray_support import make_netns, stop_netns, why_no_ray
    reason = why_no_ray()
    if reason:
        pytest.skip(reason)
    ns = make_netns()
    yield ns
    stop_netns(ns)


@pytest.fixture(scope="session")
def ray_cluster(ray_netns):
    """One Ray cluster for the whole session: a head with 4 fake GPUs on 127.0.0.1."""
    from .ray_support import Cluster
    cluster = Cluster(ray_netns)
    try:
        cluster.start_head()
        yield cluster
    finally:
        left = cluster.stop()
    assert not left, "Ray processes left running:\n  " + "\n  ".join(left)
