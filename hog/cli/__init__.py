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
import errno
import importlib
import os
import sqlite3
import sys
from typing import Callable, Dict, List, Optional

from hog import __version__
from hog.errors import EXIT_FAILED, EXIT_INT, EXIT_OK, EXIT_USAGE, HogError
from hog.state.diskguard import cannot_write

__all__ = ["main", "VERBS", "PARSERS"]

RUN = "_"       # the completion script's name for ``hog`` without a verb (a sweep)


def _lazy(module: str, name: str) -> Callable:
    """``module.name``, imported on the first call: a verb loads only its own modules
    (``hog add`` and ``hog status`` the store, never the engine, the sources or rich),
    so each starts in a few milliseconds."""
    def call(*args):
        return getattr(importlib.import_module(module), name)(*args)
    call.__name__ = name
    return call


def cmd_completion(argv: List[str]) -> int:
    from hog.cli.completion import completion_parser, completion_script  # only for this verb
    args = completion_parser().parse_args(argv)
    sys.stdout.write(completion_script(args.shell, {v: f() for v, f in PARSERS.items()}))
    return EXIT_OK


_VERBS = "hog.cli.verbs"
_RUN = "hog.cli.run"
_GPUS = "hog.cli.gpus"
VERBS: Dict[str, Callable[[List[str]], int]] = {
    "run": _lazy(_RUN, "cmd_run_dir"), "gpus": _lazy(_GPUS, "cmd_gpus"),
    "watch": _lazy(_RUN, "cmd_watch"),
    "status": _lazy(_VERBS, "cmd_status"), "add": _lazy(_VERBS, "cmd_add"),
    "stop": _lazy(_VERBS, "cmd_stop"), "kill": _lazy(_VERBS, "cmd_kill"),
    "retry": _lazy(_VERBS, "cmd_retry"), "attach": _lazy(_VERBS, "cmd_attach"),
    "logs": _lazy(_VERBS, "cmd_logs"), "report": _lazy(_VERBS, "cmd_report"),
    "rebuild": _lazy(_VERBS, "cmd_rebuild"), "completion": cmd_completion}

# each verb's parser (RUN: hog without a verb), for the completion script and the tests
PARSERS: Dict[str, Callable[[], argparse.ArgumentParser]] = {
    RUN: _lazy(_RUN, "run_parser"), "run": _lazy(_RUN, "run_dir_parser"),
    "completion": _lazy("hog.cli.completion", "completion_parser"),
    **{verb: _lazy({"watch": _RUN, "gpus": _GPUS}.get(verb, _VERBS), f"{verb}_parser")
       for verb in VERBS if verb not in ("completion", "run")}}


def unknown_verb(word: str) -> str:
    """The one line for ``hog WORD`` when WORD is no verb: the nearest verb, or what to
    do with a job file given without ``-j``."""
    import difflib  # only for a mistyped verb
    close = difflib.get_close_matches(word, list(VERBS), n=1, cutoff=0.6)
    if close:
        return f"hog: unknown command {word!r}; did you mean {close[0]!r}?"
    if os.path.isfile(word):
        return f"hog: unknown command {word!r}; to run its jobs: hog --job-file {word}"
    return f"hog: unknown command {word!r} (commands: {', '.join(VERBS)}; see hog --help)"


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-V"]):     # at once: nothing else is loaded for it
        print(f"hog {__version__}")
        return EXIT_OK
    from hog.humanize import tolerant_streams  # loads hog.model: not for --version
    tolerant_streams()      # an emoji in a name on an ASCII-only stdout: escaped, no crash
    try:
        if argv and argv[0] in VERBS:
            return VERBS[argv[0]](argv[1:])
        if argv and not argv[0].startswith("-"):
            print(unknown_verb(argv[0]), file=sys.stderr)
            return EXIT_USAGE
        return _lazy(_RUN, "cmd_run")(argv)
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
