"""``--detach``: start the same run as a background process in its own session, so
that it survives the end of the SSH session, with its output in the sweep's log.

Nothing is written before the checks that protect existing files have passed: the
parent runs them (read-only) first; with ``--fresh`` it moves the old sweep aside
itself, once the source has proved readable. It then waits until the runner says
it started its first job (a status file in ``.hog/`` named by ``HOG_DETACH_STATUS``,
written by ``ParentReport``), or exits: a failure is shown with its exit code. After
``WAIT_S`` without either, it leaves the runner waiting in the background.
"""
import os
import subprocess
import sys
import time
from typing import List, Optional

from hog.config import RunConfig
from hog.engine.sweep import move_output_aside
from hog.errors import EXIT_INT
from hog.state.files import atomic_write
from hog.state.jobdir import RUNNER_LOG, Layout
from hog.state.queuecheck import check_output

STATUS_VAR = "HOG_DETACH_STATUS"
WAIT_S = 60.0
POLL_S = 0.05


def detach(argv: List[str], config: RunConfig) -> int:
    output_dir = config.output_dir
    layout = Layout(os.path.abspath(output_dir), config.prefix)
    args = [a for a in argv if a != "--detach"]
    if config.fresh:
        note = move_output_aside(layout, output_dir, config.source)
        if note:
            print(f"hog: {note}")
        args = [a for a in args if a != "--fresh"]
    check_output(layout, output_dir)
    layout.prepare_root()
    log = os.path.join(layout.state_dir, RUNNER_LOG)
    status = os.path.join(layout.state_dir, f"detach-{os.getpid()}-{time.time_ns()}")
    args += ["--display", "plain"]
    with open(log, "ab", buffering=0) as out:
        os.chmod(log, 0o600)
        out.write(f"\n--- hog started {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                  f"{' '.join(args)}\n".encode())
        start = out.tell()
        proc = subprocess.Popen([sys.executable, "-m", "hog"] + args, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True,
                                env={**os.environ, "HOG_DETACHED": "1", STATUS_VAR: status})
    try:
        said = wait_for_runner(proc, status)
    except KeyboardInterrupt:
        print(f"hog: stopped waiting; the runner (pid {proc.pid}) goes on in the background "
              f"(hog stop {output_dir} stops it)", file=sys.stderr)
        return EXIT_INT
    finally:
        try:
            os.unlink(status)
        except OSError:
            pass
    if said is None:
        code = proc.returncode
        print("\n".join(_tail(log, start)), file=sys.stderr)
        return code if code is not None else 1
    watch = (f"  watch:  hog attach {output_dir}    hog status {output_dir}    tail -f {log}\n"
             f"  stop:   hog stop {output_dir}      (--now to terminate running jobs)")
    if said == "":
        print(f"hog: running in the background as pid {proc.pid}; it has started no job "
              f"after {WAIT_S:.0f} s (waiting for a free slot or GPU?); it survives logout.\n"
              + watch)
        return 0
    print(f"hog: running in the background as pid {proc.pid} ({said}); it survives "
          f"logout.\n" + watch)
    return 0


def wait_for_runner(proc: "subprocess.Popen[bytes]", status: str,
                    wait_s: float = WAIT_S) -> Optional[str]:
    """What the runner said (e.g. 'job_0 started'), '' if it said nothing in
    ``wait_s`` and still runs, None if it exited (``proc.returncode`` says how)."""
    deadline = time.monotonic() + wait_s
    while True:
        if proc.poll() is not None:     # it ended already (a failure, or nothing to do)
            return None
        said = _read(status)
        if said is not None:
            return said
        if time.monotonic() > deadline:
            return ""
        time.sleep(POLL_S)


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip() or "started"
    except OSError:
        return None


def _tail(log: str, start: int, lines: int = 10) -> List[str]:
    """The last ``lines`` lines this run wrote to the log."""
    try:
        with open(log, "rb") as f:
            f.seek(start)
            text = f.read()[-8000:].decode(errors="replace")
    except OSError:
        return []
    return text.strip().splitlines()[-lines:]


class ParentReport:
    """The detached runner's side: tells the waiting parent once that it runs."""

    def __init__(self) -> None:
        # taken out of the environment, so that no job inherits it
        self.path: Optional[str] = os.environ.pop(STATUS_VAR, None)

    @property
    def waiting(self) -> bool:
        """Does a parent still wait to be told?"""
        return self.path is not None

    def tell(self, what: str) -> None:
        if self.path is None:
            return
        path, self.path = self.path, None
        try:
            atomic_write(path, what + "\n")
        except OSError:
            pass            # the parent is gone, or the folder: it shows the log instead
