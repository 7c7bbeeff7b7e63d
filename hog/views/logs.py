"""``hog logs DIR JOB [--err] [-f]``: a job's output, by number, folder name or name.

Without ``-f`` the file is copied to stdout as it is. With ``-f`` new output is
printed as it is written, like ``tail -f``, and hog exits (0) once the job has
ended for good; a retried job's next attempt is followed too. Ctrl-C leaves
quietly (exit 130).
"""
import sys

from hog.errors import UsageError
from hog.model import Status
from hog.signals import SignalWait
from hog.state.jobdir import Layout
from hog.state.jobread import folder_verdict
from hog.state.reading import SweepReader
from hog.state.rows import JobRow
from hog.views.tail import Follower

POLL_S = 0.2


def find_job(store: SweepReader, ref: str, directory: str) -> JobRow:
    rows = store.find(ref)
    if not rows:
        raise UsageError(f"no job {ref!r} in {directory} (give a job number, folder name or "
                         f"job name)")
    if len(rows) > 1:
        ids = ", ".join(str(r.id) for r in rows[:10])
        raise UsageError(f"{len(rows)} jobs in {directory} are named {ref!r} (numbers {ids}); "
                         f"give a job number")
    return rows[0]


def show_logs(store: SweepReader, directory: str, ref: str, err: bool = False,
              follow: bool = False) -> int:
    """``hog logs DIR JOB``: copy the job's output (``err``: its stderr) to stdout; with
    ``follow``, keep printing what it writes until it has ended for good."""
    row = find_job(store, ref, directory)
    layout = Layout(directory, store.meta("prefix") or "job_")
    path = layout.err_path(row.id) if err else layout.out_path(row.id)
    name = row.name or layout.folder_name(row.id)
    out = sys.stdout.buffer
    if not follow:
        return _print(path, name, row, out)
    return _follow(store, layout, row, path, name, out)


def _print(path: str, name: str, row: JobRow, out) -> int:
    follower = Follower(path)
    try:
        if follower.pump(out.write) == 0 and follower.fd is None:
            print(f"hog: {name} has no output yet ({row.status})", file=sys.stderr)
            return 1
    finally:
        follower.close()
    out.flush()
    return 0


def _follow(store: SweepReader, layout: Layout, row: JobRow, path: str, name: str, out) -> int:
    follower = Follower(path)
    said_waiting = False
    with SignalWait() as sig:
        try:
            while True:
                if follower.replaced():         # the next attempt of a retried job
                    follower.pump(out.write)
                    follower.close()
                got = follower.pump(out.write)
                if got:
                    out.flush()
                if sig.exit_code is not None:
                    return sig.exit_code
                if not got and _over(store, layout, row.id):
                    follower.pump(out.write)
                    out.flush()
                    return 0
                if follower.fd is None and not said_waiting:
                    said_waiting = True
                    print(f"hog: {name} has not started yet; waiting for it (Ctrl-C to "
                          f"leave)", file=sys.stderr, flush=True)
                sig.wait([], POLL_S)
        finally:
            follower.close()


def _over(store: SweepReader, layout: Layout, job_id: int) -> bool:
    """Has the job ended for good? Its status is final; or its folder has a marker and
    no live runner will record it (the runner that ran it died)."""
    row = store.row(job_id)
    if row is None or Status(row.status).finished:
        return True
    if row.status == "running" and folder_verdict(layout, job_id) is not None:
        return all(r.id != row.runner for r in store.live_runners())
    return False
