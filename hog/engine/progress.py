"""The sweep's own counters (``Progress``), what the final summary says, and the
runner's exit code.

The runner updates ``Progress`` as jobs start and end; the displays, the hooks and
the summary only read it. ``Display`` is what the engine needs of a display: the
CLI and ``hog.api`` inject a factory for one (``make_display(progress, mode)``), so
the engine never imports the views.
"""
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional, Protocol

from hog.errors import EXIT_FAILED, EXIT_INT, EXIT_OK, EXIT_TERM, EXIT_USAGE
from hog.humanize import describe_end, eta_s, fmt_duration, printable, shown_path
from hog.model import Outcome, Status
from hog.state.jobdir import Layout

LISTED_FAILURES = 5          # the latest failures the dashboard shows
MAX_LISTED_FAILURES = 20


@dataclass
class Running:
    name: str
    gpus: str
    started: float
    index: Optional[int] = None


@dataclass
class Progress:
    """Counters the runner keeps and the displays read."""

    slots: List[str]
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0                   # by the user (hog kill): not a failure
    running: Dict[int, Running] = field(default_factory=dict)
    total: Optional[int] = None          # known once the source has been counted
    duration_sum: float = 0.0
    started_at: float = field(default_factory=time.time)
    failures: List[Outcome] = field(default_factory=list)
    failure_count: int = 0
    by_status: Dict[str, int] = field(default_factory=dict)
    notice: str = ""
    layout: Optional[Layout] = None      # the job folders' Layout: where output is
    title: str = ""
    recent_failures: Deque[Outcome] = field(
        default_factory=lambda: deque(maxlen=LISTED_FAILURES))
    quarantine: str = ""                 # the GPUs in quarantine, one line (engine/health)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def queued(self) -> Optional[int]:
        if self.total is None:
            return None
        return max(0, self.total - self.finished - len(self.running))

    def eta_s(self) -> Optional[float]:
        return eta_s(self.queued, len(self.running), self.finished, self.duration_sum,
                     len(self.slots))

    def record(self, outcome: Outcome) -> None:
        shown = self.running.get(outcome.slot)
        if shown is None or shown.index in (None, outcome.index):   # (not the job its
            self.running.pop(outcome.slot, None)                    # slot has started next)
        self.duration_sum += outcome.duration_s
        self.by_status[outcome.status.value] = self.by_status.get(outcome.status.value, 0) + 1
        if outcome.status is Status.SUCCEEDED:
            self.succeeded += 1
        elif outcome.status is Status.CANCELLED:
            self.cancelled += 1
        else:
            self.failed += 1
            self.failure_count += 1
            self.recent_failures.append(outcome)
            if len(self.failures) < MAX_LISTED_FAILURES:
                self.failures.append(outcome)


class Display(Protocol):
    """What the runner tells its display (live, plain or quiet)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def idle(self) -> None: ...

    def job_started(self, slot: int, name: str, gpus: str, pid: int) -> None: ...

    def job_ended(self, o: Outcome) -> None: ...

    def message(self, text: str) -> None: ...


DisplayFactory = Callable[[Progress, str], Display]   # (progress, --display mode)


def summary(p: Progress, not_started: int, stop_reason: str, source_error: str) -> str:
    lines = []
    took = fmt_duration(time.time() - p.started_at)
    kinds = ", ".join(f"{n} {status}" for status, n in sorted(p.by_status.items(),
                                                             key=lambda kv: kv[0] != "succeeded"))
    lines.append(f"hog: {p.finished} job(s) finished in {took}: {kinds or 'none'}"
                 + (f", {not_started} not started" if not_started else ""))
    if stop_reason:
        lines.append(f"hog: {stop_reason}")
    if source_error:
        lines.append(f"hog: error in the job source: {source_error}")
    if p.failures:
        lines.append("hog: failed jobs:")
        width = max(len(printable(o.name)) for o in p.failures)
        for o in p.failures:
            how = describe_end(o.status.value, o.exit_code, o.signal, o.note)
            lines.append(f"  {printable(o.name):<{width}}  {how:<24}  {shown_path(o.err_path)}")
        more = p.failure_count - len(p.failures)
        if more > 0:
            lines.append(f"  ... and {more} more (each job folder holds a FAILURE marker)")
    return "\n".join(lines)


def exit_code(p: Progress, exit_signal: int, source_error: str, started_any: bool,
              fatal: str) -> int:
    """The runner's exit code once the sweep is over (its summary printed)."""
    if exit_signal == signal.SIGTERM:
        return EXIT_TERM
    if exit_signal == signal.SIGINT:
        return EXIT_INT
    if source_error and not started_any:
        return EXIT_USAGE
    if p.failed or source_error or fatal:
        return EXIT_FAILED
    return EXIT_OK
