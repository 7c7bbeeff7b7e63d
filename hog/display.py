"""What the runner shows: a rich live view on a terminal, plain lines otherwise,
and always a final summary. Displays read the runner's ``Progress``; they never
change it.
"""
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, TextIO

from hog.model import Outcome, Status, slot_label

MAX_LISTED_FAILURES = 20


@dataclass
class Running:
    name: str
    gpus: str
    started: float


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

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def queued(self) -> Optional[int]:
        if self.total is None:
            return None
        return max(0, self.total - self.finished - len(self.running))

    def eta_s(self) -> Optional[float]:
        if self.queued is None or self.finished == 0:
            return None
        mean = self.duration_sum / self.finished
        return (self.queued + len(self.running) / 2) * mean / max(1, len(self.slots))

    def record(self, outcome: Outcome) -> None:
        self.running.pop(outcome.slot, None)
        self.duration_sum += outcome.duration_s
        self.by_status[outcome.status.value] = self.by_status.get(outcome.status.value, 0) + 1
        if outcome.status is Status.SUCCEEDED:
            self.succeeded += 1
        elif outcome.status is Status.CANCELLED:
            self.cancelled += 1
        else:
            self.failed += 1
            self.failure_count += 1
            if len(self.failures) < MAX_LISTED_FAILURES:
                self.failures.append(outcome)


def fmt_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def shown_path(path: str) -> str:
    """A path as the user would type it: relative when under the working directory."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def describe(outcome: Outcome) -> str:
    if outcome.signal:
        how = f"killed by {outcome.signal}"
    elif outcome.exit_code is not None:
        how = f"exit {outcome.exit_code}"
    else:
        how = outcome.note or "did not run"
    return how if outcome.status in (Status.FAILED, Status.SUCCEEDED) \
        else f"{outcome.status.value}, {how}"


class PlainDisplay:
    """One line per job start and end; for logs, pipes and files."""

    def __init__(self, progress: Progress, stream: TextIO = None, quiet: bool = False):
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
        self._line(f"[hog] start {name} slot {slot_label(slot)} gpus {gpus or '-'} pid {pid}")

    def job_ended(self, o: Outcome) -> None:
        self._line(f"[hog] {'done ' if o.status is Status.SUCCEEDED else 'FAIL '}{o.name} "
                   f"{describe(o)} in {o.duration_s:.2f}s "
                   f"({self.p.finished}{'/' + str(self.p.total) if self.p.total else ''})")

    def message(self, text: str) -> None:
        """Something the user must see, even with --quiet (goes to stderr)."""
        try:
            sys.stderr.write(f"hog: {text}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


class LiveDisplay(PlainDisplay):
    """A rich live view: counts, ETA and what runs on each slot."""

    def __init__(self, progress: Progress):
        super().__init__(progress)
        from rich.console import Console
        from rich.live import Live
        self.console = Console(stderr=False)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False,
                         get_renderable=self._render, redirect_stdout=False,
                         redirect_stderr=False)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        try:
            self.live.stop()
        except (OSError, ValueError):
            pass

    def idle(self) -> None:
        pass

    def job_started(self, slot, name, gpus, pid) -> None:
        pass

    def job_ended(self, o: Outcome) -> None:
        pass

    def message(self, text: str) -> None:
        try:
            self.live.console.print(f"[bold]hog:[/bold] {text}", highlight=False, markup=True)
        except (OSError, ValueError):
            pass

    def _render(self):
        from rich.table import Table
        from rich.text import Text
        from rich.console import Group
        p = self.p
        now = time.time()
        total = f"/{p.total}" if p.total is not None else ""
        queued = "?" if p.queued is None else str(p.queued)
        head = Text.assemble(
            ("hog ", "bold"), (f"{p.finished}{total} finished  ", ""),
            (f"{p.succeeded} ok  ", "green"), (f"{p.failed} failed  ", "red" if p.failed else ""),
            (f"{len(p.running)} running  ", "cyan"), (f"{queued} queued  ", ""),
            (f"elapsed {fmt_duration(now - p.started_at)}  ETA {fmt_duration(p.eta_s())}", "dim"))
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold dim")
        table.add_column("slot", justify="right")
        table.add_column("gpu")
        table.add_column("job")
        table.add_column("elapsed", justify="right")
        for i, gpu in enumerate(p.slots):
            r = p.running.get(i)
            if r is None:
                table.add_row(str(i), gpu, Text("idle", style="dim"), "")
            else:
                table.add_row(str(i), r.gpus or "-", r.name, fmt_duration(now - r.started))
        from rich.progress_bar import ProgressBar
        bar_row = Table.grid(padding=(0, 1))
        pct = f"{100 * p.finished / p.total:.0f}%" if p.total else ""
        bar_row.add_row(ProgressBar(total=float(p.total) if p.total else None,
                                    completed=p.finished, width=60), pct)
        parts = [head, bar_row, table]
        if p.failures:
            last = p.failures[-1]
            parts.append(Text(f"last failure: {last.name} {describe(last)}  {shown_path(last.err_path)}",
                              style="red"))
        if p.notice:
            parts.append(Text(p.notice, style="yellow"))
        return Group(*parts)


def make_display(progress: Progress, mode: str):
    """``auto``: live on a terminal, plain otherwise; or ``live``/``plain``/``quiet``."""
    if mode == "quiet":
        return PlainDisplay(progress, quiet=True)
    if mode == "live" or (mode == "auto" and _is_terminal()):
        return LiveDisplay(progress)
    return PlainDisplay(progress)


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


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
        width = max(len(o.name) for o in p.failures)
        for o in p.failures:
            lines.append(f"  {o.name:<{width}}  {describe(o):<24}  {shown_path(o.err_path)}")
        more = p.failure_count - len(p.failures)
        if more > 0:
            lines.append(f"  ... and {more} more (each job folder holds a FAILURE marker)")
    return "\n".join(lines)
