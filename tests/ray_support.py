"""Support for the Ray tests: a network namespace, one Ray cluster per test session.

Ray listens on every interface, advertises the machine's address and probes a
public one to find it, so everything Ray-related runs inside a network namespace
of its own with only loopback up (``unshare --net``, then ``ip link set lo up``):
a holder process keeps the namespace alive and every Ray or hog command enters it
with ``nsenter``. Nothing can reach an address but 127.0.0.1.

The shared cluster is a head started with ``ray start --head --block`` on
127.0.0.1 with 4 fake GPUs (GPU ids are labels; no GPU is needed), its own temp
dir and HOME, so nothing leaks into the machine's ``/tmp/ray`` or ``~/.ray``.
Every process it starts inherits that HOME, which is how the teardown finds and
stops (by PID) anything still alive. Tests are skipped, with the reason, only
when Ray is not installed or a namespace cannot be made (not root, no unshare).
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

from .harness import CHECKOUT, TAG_VAR, children_of, describe_pid, hog_argv, hog_env, pids_whose_env

HEAD_PORT = 6379
# A dead node is noticed within about a second instead of Ray's default 15 s.
FAST_HEALTH = {"RAY_health_check_period_ms": "300", "RAY_health_check_timeout_ms": "1000",
               "RAY_health_check_failure_threshold": "3"}


def why_no_ray() -> Optional[str]:
    if importlib.util.find_spec("ray") is None:
        return ("Ray is not installed for this Python, so the Ray tests cannot run: "
                "pip install -e '.[ray]' (tests/setup.sh tries it and says why it failed)")
    return None


def pids_with(entry: bytes) -> List[int]:
    """Live processes whose environment has an entry starting with ``entry``."""
    return pids_whose_env(lambda env: any(e.startswith(entry) for e in env))


def descendants(pid: int) -> List[int]:
    out, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def kill_all(pids: List[int]) -> None:
    """Freeze, then SIGKILL, a set of processes (so none can start another meanwhile)."""
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


@dataclass
class Netns:
    holder: subprocess.Popen

    def argv(self, command: List[str]) -> List[str]:
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *command]


def make_netns() -> Netns:
    """A network namespace with only loopback up, held by a sleeping process."""
    if os.geteuid() != 0:
        pytest.skip("Ray tests need a network namespace of their own: run them as root")
    if not shutil.which("unshare") or not shutil.which("nsenter") or not shutil.which("ip"):
        pytest.skip("Ray tests need unshare, nsenter and ip (util-linux, iproute2)")
    env = {k: v for k, v in os.environ.items() if k != TAG_VAR}
    holder = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && echo up && exec sleep 86400"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = holder.stdout.readline().decode().strip()
    if line != "up":
        holder.kill()
        _, err = holder.communicate(timeout=10)
        pytest.skip(f"cannot make a network namespace: {err.decode().strip() or line}")
    return Netns(holder)


def stop_netns(ns: Netns) -> None:
    ns.holder.kill()
    ns.holder.wait(10)
    ns.holder.stdout.close()
    ns.holder.stderr.close()


class Cluster:
    """Ray nodes on 127.0.0.1 in ``netns``, sharing a private HOME and temp dir."""

    def __init__(self, netns: Netns):
        self.netns = netns
        self.root = Path(tempfile.mkdtemp(prefix="hogray", dir="/tmp"))  # short: socket paths
        self.home = self.root / "home"
        self.temp = self.root / "t"
        self.home.mkdir()
        self.temp.mkdir()
        self.address = f"127.0.0.1:{HEAD_PORT}"
        self.nodes: List[subprocess.Popen] = []

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if k != TAG_VAR}
        old = env.get("PYTHONPATH")
        env.update(HOME=str(self.home), RAY_TMPDIR=str(self.temp), RAY_USAGE_STATS_ENABLED="0",
                   PYTHONPATH=str(CHECKOUT) + (os.pathsep + old if old else ""), **FAST_HEALTH)
        env.update(extra)
        for var in ("RAY_ADDRESS", "CUDA_VISIBLE_DEVICES"):
            env.pop(var, None)
        return env

    def start_node(self, *args: str, timeout: float = 120) -> subprocess.Popen:
        """``ray start ARGS --block``; returns once the node runs."""
        n = len(self.nodes)
        log = open(self.root / f"node{n}.log", "wb")
        argv = self.netns.argv([sys.executable, "-m", "ray.scripts.scripts", "start",
                                "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
                                "--block", *args])
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=self.env(), cwd=str(self.root))
        log.close()
        self.nodes.append(proc)
        path = self.root / f"node{n}.log"
        deadline = time.monotonic() + timeout
        while b"Ray runtime started" not in path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                text = path.read_text(errors="replace")[-3000:]
                self.stop_node(proc)
                pytest.fail(f"ray start {' '.join(args)} did not start:\n{text}")
            time.sleep(0.2)
        return proc

    def start_head(self) -> None:
        self.start_node("--head", "--port", str(HEAD_PORT), "--num-gpus", "4", "--num-cpus", "2",
                        "--temp-dir", str(self.temp), "--include-dashboard=false")

    def stop_node(self, proc: subprocess.Popen) -> None:
        """SIGTERM ``ray start --block`` (it stops its node), then SIGKILL what is left."""
        tree = descendants(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        kill_all([proc.pid] + tree)
        proc.wait(10)

    def leftovers(self) -> List[int]:
        """Processes started by this cluster (they carry its HOME) still alive."""
        return pids_with(f"HOME={self.home}".encode())

    def stop(self) -> List[str]:
        for proc in reversed(self.nodes):
            self.stop_node(proc)
        deadline = time.monotonic() + 5
        left = self.leftovers()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.leftovers()
        described = [describe_pid(p) for p in left]
        kill_all(left)
        shutil.rmtree(self.root, ignore_errors=True)
        return described

    def hog_argv(self, *args) -> List[str]:
        return self.netns.argv(hog_argv(*args))

    def hog_env(self) -> dict:
        """Environment for a hog run (keeps the test's tag, so leaks are caught)."""
        return hog_env({"HOME": str(self.home), "RAY_TMPDIR": str(self.temp),
                        "RAY_ADDRESS": None})
