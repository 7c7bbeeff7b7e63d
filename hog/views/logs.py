"""``hog logs DIR JOB [--err] [-f]``: a job's output, by number, folder name or name.

Without ``-f`` the file is copied to stdout as it is. With ``-f`` new output is
printed as it is written, like ``tail -f``, and hog exits (0) once the job has
ended for good; a retried job's next attempt is followed too. Ctrl-C leaves
quietly (exit 130).
"""
import sys
from typing import List

from hog.errors import UsageError
from hog.signals import SignalWait
from hog.state.jobdir import Layout, folder_verdict
from hog.state.reading import SweepReader, open_sweep
from hog.state.rows import JobRow
from hog.views.tail import Follower

POLL_S = 0.2
UNFINISHED = ("queued", "running")


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


def cmd_logs(argv: List[str]) -> int:
    from hog.cli import dir_parser
    p = dir_parser(
        "logs", "Print a job's standard output (or, with --err, its "
        "standard error); with -f, keep printing what it writes until it ends.")
    p.add_argument("job", metavar="JOB", help="job number, folder name (job_7) or job name")
    p.add_argument("--err", action="store_true", help="standard error (.ERR) instead")
    p.add_argument("-f", "--follow", action="store_true",
                   help="follow the output as it grows; exit once the job has ended")
    args = p.parse_args(argv)
    store = open_sweep(args.dir)
    try:
        row = find_job(store, args.job, args.dir)
        layout = Layout(args.dir, store.meta("prefix") or "job_")
        path = layout.err_path(row.id) if args.err else layout.out_path(row.id)
        name = row.name or layout.folder_name(row.id)
        out = sys.stdout.buffer
        if not args.follow:
            return _print(path, name, row, out)
        return _follow(store, layout, row, path, name, out)
    except KeyboardInterrupt:
        return 130
    finally:
        store.close()


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
    if row is None or row.status not in UNFINISHED:
        return True
    if row.status == "running" and folder_verdict(layout, job_id) is not None:
        return all(r.id != row.runner for r in store.live_runners())
    return False
