"""Errors that end a run with a one-line message instead of a traceback."""


class HogError(Exception):
    """An error the user can fix; its message is shown as one line."""

    exit_code = 2


class UsageError(HogError):
    """A bad command line: unknown value, missing option (exit 2)."""


class InputError(HogError):
    """A bad job source: names the file and, where known, the line (exit 2)."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
