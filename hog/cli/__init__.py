"""Command line: ``hog --job_file F --gpus SPEC`` runs a sweep; verbs come first.

The outermost layer: nothing else in hog imports it. ``main`` picks the verb (or the
sweep), and turns what ends it into an exit code at one place: a ``HogError`` is one
line on stderr and its code (2), Ctrl-C 130, a closed pipe 0.

Exit codes (``hog.errors``): 0 all jobs succeeded; 1 a job failed (or could not be
scheduled); 2 usage or input error, nothing started; 130 stopped by Ctrl-C; 143
stopped by SIGTERM.
"""
import errno
import os
import sqlite3
import sys
from typing import Callable, Dict, List, Optional

from hog.cli.run import cmd_run, cmd_watch
from hog.cli.verbs import (
    cmd_add,
    cmd_attach,
    cmd_gpus,
    cmd_kill,
    cmd_logs,
    cmd_rebuild,
    cmd_report,
    cmd_retry,
    cmd_status,
    cmd_stop,
)
from hog.errors import EXIT_FAILED, EXIT_INT, EXIT_OK, EXIT_USAGE, HogError
from hog.humanize import tolerant_streams
from hog.state.diskguard import cannot_write

__all__ = ["main", "VERBS"]

VERBS: Dict[str, Callable[[List[str]], int]] = {
    "gpus": cmd_gpus, "watch": cmd_watch, "status": cmd_status, "add": cmd_add,
    "stop": cmd_stop, "kill": cmd_kill, "retry": cmd_retry, "attach": cmd_attach,
    "logs": cmd_logs, "report": cmd_report, "rebuild": cmd_rebuild}


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tolerant_streams()      # an emoji in a name on an ASCII-only stdout: escaped, no crash
    try:
        if argv and argv[0] in VERBS:
            return VERBS[argv[0]](argv[1:])
        return cmd_run(argv)
    except HogError as e:
        print(f"hog: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("hog: interrupted", file=sys.stderr)
        return EXIT_INT
    except BrokenPipeError:             # hog status DIR | head
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except (OSError, sqlite3.Error) as e:
        if refused(e):                  # the disk refuses hog's writes: full, read-only
            where = getattr(e, "filename", None)
            print(f"hog: error: cannot write{f' to {where}' if where else ''} "
                  f"({cannot_write(e)})", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(e, sqlite3.OperationalError):     # locked past the timeout, I/O
            print(f"hog: error: the sweep's queue cannot be used ({e})", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(e, sqlite3.DatabaseError):        # corrupt part-way through
            print(f"hog: error: the sweep's queue is corrupt ({e}); nothing more was run; "
                  f"to rebuild it from the job folders: hog rebuild DIR", file=sys.stderr)
            return EXIT_USAGE
        raise


def refused(e: BaseException) -> bool:
    """A write the disk refused (full, over quota, read-only): one line, not a traceback."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
    return cannot_write(e) is not None
