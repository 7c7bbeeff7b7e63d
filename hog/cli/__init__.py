"""Command line: ``hog --job-file F --gpus SPEC`` runs a sweep; verbs come first
(``hog run DIR`` runs a queue that has no job source).

The outermost layer: nothing else in hog imports it. ``main`` picks the verb (or the
sweep), and turns what ends it into an exit code at one place: a ``HogError`` is one
line on stderr and its code (2), Ctrl-C 130, a closed pipe 0. A first word that is
neither a verb nor an option is one line naming the nearest verb (exit 2).

Exit codes (``hog.errors``): 0 all jobs succeeded; 1 a job failed (or could not be
scheduled); 2 usage or input error, nothing started; 130 stopped by Ctrl-C; 143
stopped by SIGTERM.
"""
import argparse
import difflib
import errno
import os
import sqlite3
import sys
from typing import Callable, Dict, List, Optional

from hog.cli.completion import RUN, completion_parser, completion_script
from hog.cli.run import cmd_run, cmd_run_dir, cmd_watch, run_dir_parser, run_parser, watch_parser
from hog.cli.verbs import (
    add_parser,
    attach_parser,
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
    gpus_parser,
    kill_parser,
    logs_parser,
    rebuild_parser,
    report_parser,
    retry_parser,
    status_parser,
    stop_parser,
)
from hog.errors import EXIT_FAILED, EXIT_INT, EXIT_OK, EXIT_USAGE, HogError
from hog.humanize import tolerant_streams
from hog.state.diskguard import cannot_write

__all__ = ["main", "VERBS", "PARSERS"]


def cmd_completion(argv: List[str]) -> int:
    args = completion_parser().parse_args(argv)
    sys.stdout.write(completion_script(args.shell, {v: f() for v, f in PARSERS.items()}))
    return EXIT_OK


VERBS: Dict[str, Callable[[List[str]], int]] = {
    "run": cmd_run_dir, "gpus": cmd_gpus, "watch": cmd_watch, "status": cmd_status, "add": cmd_add,
    "stop": cmd_stop, "kill": cmd_kill, "retry": cmd_retry, "attach": cmd_attach,
    "logs": cmd_logs, "report": cmd_report, "rebuild": cmd_rebuild,
    "completion": cmd_completion}

# each verb's parser (RUN: hog without a verb), for the completion script and the tests
PARSERS: Dict[str, Callable[[], argparse.ArgumentParser]] = {
    RUN: run_parser, "run": run_dir_parser, "gpus": gpus_parser, "watch": watch_parser,
    "status": status_parser,
    "add": add_parser, "stop": stop_parser, "kill": kill_parser, "retry": retry_parser,
    "attach": attach_parser, "logs": logs_parser, "report": report_parser,
    "rebuild": rebuild_parser, "completion": completion_parser}


def unknown_verb(word: str) -> str:
    """The one line for ``hog WORD`` when WORD is no verb: the nearest verb, or what to
    do with a job file given without ``-j``."""
    close = difflib.get_close_matches(word, list(VERBS), n=1, cutoff=0.6)
    if close:
        return f"hog: unknown command {word!r}; did you mean {close[0]!r}?"
    if os.path.isfile(word):
        return f"hog: unknown command {word!r}; to run its jobs: hog --job-file {word}"
    return f"hog: unknown command {word!r} (commands: {', '.join(VERBS)}; see hog --help)"


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tolerant_streams()      # an emoji in a name on an ASCII-only stdout: escaped, no crash
    try:
        if argv and argv[0] in VERBS:
            return VERBS[argv[0]](argv[1:])
        if argv and not argv[0].startswith("-"):
            print(unknown_verb(argv[0]), file=sys.stderr)
            return EXIT_USAGE
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
