"""The keeper of a Ray worker's jobs (run as a plain script, one per worker).

``python -I -S keeper.py WORKER_PID GRACE``: says ``ready`` on stdout, then reads
``+PGID START`` (a job started:
its process group and its leader's start time) and ``-PGID`` (it ended) lines on
stdin. When the worker goes away, whatever the reason (Ray ends idle workers,
kills them when hog's driver exits, or the raylet died), it ends every group still
listed: SIGTERM, GRACE seconds, SIGKILL. So a job never outlives the Ray worker
that started it, even when nothing is left to ask it to stop.

It runs in its own session, started through ``sh`` (``spawn.start_keeper``): Ray
kills a worker's direct children when the worker exits, and the keeper must
outlive that to do its work.
"""
import os
import select
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))
from hog.backends import spawn  # noqa: E402 - the hog this script belongs to, even under -I
from hog.proc import proc_start_time  # noqa: E402


def end_groups(groups: dict, grace: float) -> None:
    """End every listed group whose leader is still the job's (not a reused pid)."""
    mine = [g for g, start in groups.items() if proc_start_time(g) in (start, "")]
    for pgid in mine:
        spawn.signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while mine and time.monotonic() < deadline:
        mine = [g for g in mine if spawn.group_alive(g)]
        time.sleep(0.05)
    for pgid in mine:
        spawn.signal_group(pgid, signal.SIGKILL)


def main(argv) -> int:
    worker, grace = int(argv[0]), float(argv[1])
    os.setsid()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    groups = {}
    poller = select.poll()
    poller.register(0, select.POLLIN)
    try:
        watched = os.pidfd_open(worker)
        poller.register(watched, select.POLLIN)
    except ProcessLookupError:
        watched = None                     # gone already: end what it had started
    os.write(1, b"ready\n")
    os.close(1)
    buf = b""
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if 0 in ready or watched is None:
            data = os.read(0, 65536)
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                fields = line.decode().split()
                if fields and fields[0].startswith("+"):
                    groups[int(fields[0][1:])] = fields[1] if len(fields) > 1 else ""
                elif fields and fields[0].startswith("-"):
                    groups.pop(int(fields[0][1:]), None)
            if not data:
                break
        if watched is not None and watched in ready:
            break
    end_groups(groups, grace)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
