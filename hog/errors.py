"""Errors that end a run with a one-line message instead of a traceback, and the exit
codes hog ends with (the one place they are spelled out)."""

EXIT_OK = 0          # every job succeeded (or a verb did what it was asked)
EXIT_FAILED = 1      # some job failed or could not be scheduled
EXIT_USAGE = 2       # bad usage or input: nothing started
EXIT_HUP = 129       # stopped by SIGHUP (128 + the signal's number)
EXIT_INT = 130       # stopped by Ctrl-C (SIGINT)
EXIT_TERM = 143      # stopped by SIGTERM


class HogError(Exception):
    """An error the user can fix; its message is shown as one line."""

    exit_code = EXIT_USAGE


class UsageError(HogError):
    """A bad command line: unknown value, missing option (exit 2)."""


class WriteRefused(HogError):
    """The output directory refuses hog's writes (disk full, read-only) before anything
    started (exit 1)."""

    exit_code = EXIT_FAILED


class SourceError(Exception):
    """A job source failed part-way through being read (a yielder raised, a later line is bad).

    ``message`` already names the file and line.
    """


class InputError(HogError):
    """A bad job source: names the file and, where known, the line (exit 2)."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
