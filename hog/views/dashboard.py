"""The dashboard: a plain snapshot of a sweep and how it is drawn.

A ``Snapshot`` is built either from a runner's own ``Progress`` (the live view of
``hog --job_file ...``) or from the store and job folders (``hog attach``); the one
renderer draws both, so the two views are the same. Nothing here does I/O.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

from hog.humanize import fmt_duration, shown_path

REFRESH_PER_SECOND = 4       # redraws at most this often


@dataclass(frozen=True)
class SlotView:
    """One slot: idle (``job`` None) or running a job."""

    label: str                      # "0", "cpu0"; "r2:0" when several runners share a sweep
    gpu: str                        # the slot's GPU id ('' for a CPU slot)
    job: Optional[str] = None       # the running job's name
    gpus: str = ""                  # the GPU ids the job got
    started: Optional[float] = None
    last_line: str = ""             # the last line the job wrote to its .OUT or .ERR


@dataclass(frozen=True)
class FailureView:
    name: str
    how: str                        # "exit 3", "timeout, killed by SIGTERM", ...
    err_path: str


@dataclass(frozen=True)
class Snapshot:
    title: str
    now: float
    started_at: float
    succeeded: int
    failed: int
    cancelled: int
    running: int
    queued: Optional[int]           # None while the source is still being counted
    eta_s: Optional[float]
    slots: Tuple[SlotView, ...]
    failures: Tuple[FailureView, ...] = ()      # the latest first
    failure_count: int = 0
    notice: str = ""
    ended: bool = False             # the sweep's runners have all stopped

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def total(self) -> Optional[int]:
        return None if self.queued is None else self.finished + self.running + self.queued


# ------------------------------------------------------------------ drawing
BAR_WIDTH = 40
JOB_WIDTH = 32


def render(s: Snapshot):
    """The dashboard as a rich renderable: counts, a progress bar with the ETA, a row
    per slot with its job's last output line, and the latest failures.

    Every line is a plain ``Text`` laid out here (no rich ``Table``, whose layout
    costs ten times more): the live view redraws it several times a second in the
    runner's process, so each frame must stay well under a millisecond or two."""
    from rich.console import Group  # rich: only for a live dashboard
    from rich.text import Text

    total = s.total
    head = Text.assemble(("hog ", "bold"), (s.title, "bold"), " ", *_bar(s.finished, total),
                         f" {100 * s.finished / total:.0f}%" if total else "",
                         f" {s.finished}/{total if total is not None else '?'}",
                         (f"  elapsed {fmt_duration(s.now - s.started_at)}", "dim"),
                         (f"  {_eta(s)}", "dim"))
    counts = Text.assemble(
        (f"{s.succeeded} done  ", "green"),
        (f"{s.failed} failed  ", "bold red" if s.failed else "dim"),
        (f"{s.running} running  ", "cyan"),
        (f"{'?' if s.queued is None else s.queued} queued", ""),
        (f"  {s.cancelled} cancelled" if s.cancelled else "", "dim"))
    lines = [head, counts]
    if s.slots:
        wl = max(4, max(len(v.label) for v in s.slots))
        wg = max(3, max(len(v.gpus if v.job else v.gpu or "-") for v in s.slots))
        wj = min(JOB_WIDTH, max(4, max(len(v.job or "idle") for v in s.slots)))
        lines.append(_line(Text(f"{'slot':>{wl}}  {'gpu':<{wg}}  {'job':<{wj}}  {'elapsed':>7}"
                                f"  last output", style="bold dim")))
        for v in s.slots:
            if v.job is None:
                lines.append(_line(Text.assemble(f"{v.label:>{wl}}  {v.gpu or '-':<{wg}}  ",
                                                 ("idle", "dim"))))
                continue
            elapsed = None if v.started is None else max(0.0, s.now - v.started)
            lines.append(_line(Text.assemble(
                f"{v.label:>{wl}}  {v.gpus or '-':<{wg}}  {_cut(v.job, wj):<{wj}}  "
                f"{fmt_duration(elapsed):>7}  ", (v.last_line, "dim"))))
    if s.failures:
        more = s.failure_count - len(s.failures)
        lines.append(Text(f"latest failures ({s.failure_count} in all)" if more > 0
                          else "latest failures", style="bold red"))
        wn = min(JOB_WIDTH, max(len(f.name) for f in s.failures))
        wh = max(len(f.how) for f in s.failures)
        for f in s.failures:
            lines.append(_line(Text.assemble(f"  {_cut(f.name, wn):<{wn}}  ",
                                             (f"{f.how:<{wh}}", "red"), "  ",
                                             (shown_path(f.err_path), "dim"))))
    if s.notice:
        lines.append(Text(s.notice, style="yellow"))
    return Group(*lines)


def _line(text):
    """One screen line: cut at the terminal's width, never wrapped."""
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _bar(done: int, total: Optional[int]):
    if not total:
        return [("━" * BAR_WIDTH, "grey37")]
    full = min(BAR_WIDTH, round(BAR_WIDTH * done / total))
    return [("━" * full, "green" if done >= total else "magenta"),
            ("━" * (BAR_WIDTH - full), "grey37")]


def _eta(s: Snapshot) -> str:
    if s.ended:
        return "stopped" if s.queued else "done"
    return f"ETA {fmt_duration(s.eta_s)}"
