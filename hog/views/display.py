"""What the runner shows: a rich live dashboard on a terminal (``hog.views.live``,
loaded only then), plain lines otherwise, and always a final summary. Displays read the
runner's ``Progress``; they never change it. The dashboard's drawing is
``hog.views.dashboard``.
"""
import os
import sys
from typing import Optional, TextIO

from hog.engine.progress import Progress, Running, summary
from hog.humanize import describe_end, end_line, fmt_duration, shown_path, start_line
from hog.model import Outcome, Status

__all__ = ["Progress", "Running", "PlainDisplay", "make_display", "summary",
           "describe", "fmt_duration", "shown_path", "start_line", "end_line"]

def describe(outcome: Outcome) -> str:
    return describe_end(outcome.status.value, outcome.exit_code, outcome.signal, outcome.note)


class PlainDisplay:
    """One line per job start and end; for logs, pipes and files."""

    def __init__(self, progress: Progress, stream: Optional[TextIO] = None, quiet: bool = False):
        self.p = progress
        self.stream = stream or sys.stdout
        self.quiet = quiet

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        try:
            self.stream.write(text + "\n")
        except (OSError, ValueError):
            pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.idle()

    def idle(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def job_started(self, slot: int, name: str, gpus: str, pid: int) -> None:
        if not self.quiet:
            self._line(start_line(slot, name, gpus, pid))

    def job_ended(self, o: Outcome) -> None:
        if not self.quiet:
            self._line(end_line(o.name, o.status is Status.SUCCEEDED, describe(o), o.duration_s,
                            self.p.finished, self.p.total, at=o.ended or None))

    def message(self, text: str) -> None:
        """Something the user must see, even with --quiet (goes to stderr)."""
        try:
            sys.stderr.write(f"hog: {text}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def make_display(progress: Progress, mode: str):
    """``auto``: live on a terminal, plain otherwise; or ``live``/``plain``/``quiet``."""
    if mode == "quiet":
        return PlainDisplay(progress, quiet=True)
    if mode == "live" or (mode == "auto" and is_terminal()):
        from hog.views.live import LiveDisplay  # (the dashboard: only on a terminal)
        return LiveDisplay(progress)
    return PlainDisplay(progress)


def is_terminal() -> bool:
    try:
        return sys.stdout.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False
