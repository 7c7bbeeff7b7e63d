"""``--detach``: start the same run as a background process in its own session, so
that it survives the end of the SSH session, with its output in the sweep's log."""
import os
import subprocess
import sys
import time
from typing import List

from hog.state.jobdir import RUNNER_LOG, STATE_DIR
from hog.state.store import Store


def detach(argv: List[str], output_dir: str) -> int:
    state_dir = os.path.join(output_dir, STATE_DIR)
    os.makedirs(output_dir, exist_ok=True)
    Store(state_dir).close()            # create it, and check who owns it, now
    log = os.path.join(state_dir, RUNNER_LOG)
    args = [a for a in argv if a not in ("--detach",)] + ["--display", "plain"]
    with open(log, "ab", buffering=0) as out:
        os.chmod(log, 0o600)
        out.write(f"\n--- hog started {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                  f"{' '.join(args)}\n".encode())
        proc = subprocess.Popen([sys.executable, "-m", "hog"] + args, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True,
                                env={**os.environ, "HOG_DETACHED": "1"})
    try:                                 # catch a run that fails at once (bad input)
        code = proc.wait(0.7)
    except subprocess.TimeoutExpired:
        code = None
    if code is not None:
        with open(log, "rb") as f:
            tail = f.read()[-2000:].decode(errors="replace").strip().splitlines()[-5:]
        print("\n".join(tail), file=sys.stderr)
        return code
    print(f"hog: running in the background as pid {proc.pid}; it survives logout.\n"
          f"  watch:  hog attach {output_dir}    hog status {output_dir}    tail -f {log}\n"
          f"  stop:   hog stop {output_dir}      (--now to terminate running jobs)")
    return 0
