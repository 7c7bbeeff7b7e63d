"""The dashboard: a plain snapshot of a sweep and how it is drawn.

A ``Snapshot`` is built either from a runner's own ``Progress`` (the live view of
``hog --job_file ...``) or from the store and job folders (``hog attach``); the one
renderer draws both, so the two views are the same. Nothing here does I/O.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

from hog.humanize import fmt_duration, printable, shown_path

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
    quarantine: str = ""            # GPUs in quarantine, one line (engine/health.py)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def total(self) -> Optional[int]:
        return None if self.queued is None else self.finished + self.running + self.queued


# ------------------------------------------------------------------ drawing
BAR_WIDTH = 40
MIN_BAR = 10                 # below this the header drops "elapsed", then cuts the title
JOB_WIDTH = 32
GPU_WIDTH = 15
MIN_WIDTH = 20
FAILURES_KEPT = 2            # failures always on screen, however many slots there are


def render(s: Snapshot, width: int = 80, height: Optional[int] = None):
    """The dashboard as a rich renderable for a terminal of ``width`` columns and
    ``height`` rows (None: as tall as it takes): counts, a progress bar with the ETA, a
    row per slot with its job's last output line, and the latest failures.

    Every line fits ``width`` (cut, never wrapped): the header drops what matters least
    first, the job column takes at most about a third of what the fixed columns leave
    so the last output line gets the rest. When the slots do not all fit ``height``, as
    many as fit are shown and the others summed up in one line (``... 12 more slots
    (9 busy)``) so the failures stay on screen.

    Every line is a plain ``Text`` laid out here (no rich ``Table``, whose layout
    costs ten times more): the live view redraws it several times a second in the
    runner's process, so each frame must stay well under a millisecond or two."""
    from rich.console import Group  # rich: only for a live dashboard
    from rich.text import Text

    width = max(MIN_WIDTH, width)
    counts = _line(Text.assemble(
        (f"{s.succeeded} done  ", "green"),
        (f"{s.failed} failed  ", "bold red" if s.failed else "dim"),
        (f"{s.running} running  ", "cyan"),
        (f"{'?' if s.queued is None else s.queued} queued", ""),
        (f"  {s.cancelled} cancelled" if s.cancelled else "", "dim")))
    notice = [_line(Text(printable(s.notice), style="yellow"))] if s.notice else []
    if s.quarantine:
        notice.append(_line(Text(printable(s.quarantine), style="bold red")))
    slot_lines = 1 + len(s.slots) if s.slots else 0
    fail_lines = 1 + len(s.failures) if s.failures else 0
    shown_slots, shown_failures = len(s.slots), len(s.failures)
    if height is not None and slot_lines + fail_lines > height - 2 - len(notice):
        room = max(0, height - 2 - len(notice))
        kept = min(fail_lines, 1 + FAILURES_KEPT, room)
        if room - kept >= slot_lines:
            kept = room - slot_lines
        else:
            slot_lines = room - kept
            # the table's header, some rows and the line that sums up the others
            shown_slots = max(0, slot_lines - 2)
        shown_failures = max(0, kept - 1)
    lines = [_head(s, width), counts]
    if slot_lines:
        lines.extend(_slots(s, width, shown_slots, slot_lines))
    if shown_failures:
        lines.extend(_failures(s, width, shown_failures))
    return Group(*lines, *notice)


def _head(s: Snapshot, width: int):
    from rich.text import Text
    total = s.total
    pct = f" {100 * s.finished / total:.0f}%" if total else ""
    count = f" {s.finished}/{total if total is not None else '?'}"
    elapsed = f"  elapsed {fmt_duration(s.now - s.started_at)}"
    eta = f"  {_eta(s)}"
    title = printable(s.title)
    fixed = len("hog ") + 1 + len(pct) + len(count) + len(eta)
    if width - fixed - len(title) - len(elapsed) < MIN_BAR:
        elapsed = ""
    if width - fixed - len(title) < MIN_BAR:
        title = _cut_left(title, max(8, width - fixed - MIN_BAR))
    bar = max(0, min(BAR_WIDTH, width - fixed - len(title) - len(elapsed)))
    return _line(Text.assemble(("hog ", "bold"), (title, "bold"), " ",
                               *_bar(s.finished, total, bar), pct, count, (elapsed, "dim"),
                               (eta, "dim")))


def _slots(s: Snapshot, width: int, shown: int, lines: int) -> list:
    """The slot table's header and ``shown`` rows in ``lines`` lines: the slots left out
    summed up in the last one."""
    from rich.text import Text
    wl = max(4, max(len(v.label) for v in s.slots))
    wg = min(GPU_WIDTH, max(3, max(len(v.gpus if v.job else v.gpu or "-") for v in s.slots)))
    fixed = wl + 2 + wg + 2 + 2 + 7 + 2
    wj = min(JOB_WIDTH, max(4, max(len(printable(v.job or "idle")) for v in s.slots)),
             max(6, (width - fixed) * 2 // 5))
    out = []
    if lines >= 2 or shown == len(s.slots):
        out.append(_line(Text(f"{'slot':>{wl}}  {'gpu':<{wg}}  {'job':<{wj}}  {'elapsed':>7}"
                              f"  last output", style="bold dim")))
    for v in s.slots[:shown]:
        gpus = _cut(v.gpus if v.job else v.gpu or "-", wg) or "-"
        if v.job is None:
            out.append(_line(Text.assemble(f"{v.label:>{wl}}  {gpus:<{wg}}  ", ("idle", "dim"))))
            continue
        elapsed = None if v.started is None else max(0.0, s.now - v.started)
        out.append(_line(Text.assemble(
            f"{v.label:>{wl}}  {gpus:<{wg}}  {_cut(printable(v.job), wj):<{wj}}  "
            f"{fmt_duration(elapsed):>7}  ", (v.last_line, "dim"))))
    hidden = s.slots[shown:]
    if hidden and lines > len(out):
        busy = sum(1 for v in hidden if v.job is not None)
        more = "more " if shown else ""
        out.append(_line(Text(f"... {len(hidden)} {more}slot{'s' if len(hidden) > 1 else ''} "
                              f"({busy} busy)", style="dim")))
    return out


def _failures(s: Snapshot, width: int, shown: int) -> list:
    from rich.text import Text
    failures = s.failures[:shown]
    more = s.failure_count - len(failures)
    out = [_line(Text(f"latest failures ({s.failure_count} in all)" if more > 0
                      else "latest failures", style="bold red"))]
    wn = min(JOB_WIDTH, max(8, width // 3), max(len(printable(f.name)) for f in failures))
    wh = max(len(f.how) for f in failures)
    for f in failures:
        out.append(_line(Text.assemble(f"  {_cut(printable(f.name), wn):<{wn}}  ",
                                       (f"{f.how:<{wh}}", "red"), "  ",
                                       (shown_path(f.err_path), "dim"))))
    return out


def _line(text):
    """One screen line: cut at the terminal's width, never wrapped."""
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _cut_left(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[len(text) - width + 1:]


def _bar(done: int, total: Optional[int], width: int = BAR_WIDTH):
    if not total:
        return [("━" * width, "grey37")]
    full = min(width, round(width * done / total))
    return [("━" * full, "green" if done >= total else "magenta"),
            ("━" * (width - full), "grey37")]


def _eta(s: Snapshot) -> str:
    if s.ended:
        return "stopped" if s.queued else "done"
    return f"ETA {fmt_duration(s.eta_s)}"
