"""The live dashboard as a runner's display: rich's ``Live`` redrawn a few times a
second from the runner's ``Progress`` (``snapshot``), never per job. Loaded only when a
run has a terminal to draw on (``display.make_display``)."""
import time
from typing import List, Optional

from hog.engine.progress import Progress
from hog.model import Outcome, slot_label
from hog.views.dashboard import REFRESH_PER_SECOND, FailureView, SlotView, Snapshot, render
from hog.views.display import PlainDisplay, describe
from hog.views.tail import TailCache


def snapshot(p: Progress, tails, now: Optional[float] = None) -> Snapshot:
    """What the dashboard shows of a runner's ``Progress``; ``tails`` (a
    ``hog.views.tail.TailCache``) gives each running job's last output line."""
    now = time.time() if now is None else now
    running = dict(p.running)            # one atomic copy: the runner thread updates it
    layout = p.layout
    rows: List[SlotView] = []
    shown: List[str] = []

    def row(slot: int, gpu: str) -> SlotView:
        r = running.get(slot)
        if r is None:
            return SlotView(slot_label(slot), gpu)
        line = ""
        if layout is not None and r.index is not None:
            out, err = layout.out_path(r.index), layout.err_path(r.index)
            shown.extend((out, err))
            line = tails.latest(out, err)
        return SlotView(slot_label(slot), gpu, r.name, r.gpus, r.started, line)

    slots = list(p.slots)
    for i, gpu in enumerate(slots):
        rows.append(row(i, gpu))
    for slot in sorted(s for s in running if not 0 <= s < len(slots)):
        rows.append(row(slot, ""))
    tails.forget_except(shown)
    failures = tuple(FailureView(o.name, describe(o), o.err_path)
                     for o in reversed(list(p.recent_failures)))
    return Snapshot(title=p.title, now=now, started_at=p.started_at, succeeded=p.succeeded,
                    failed=p.failed, cancelled=p.cancelled, running=len(running),
                    queued=p.queued, eta_s=p.eta_s(), slots=tuple(rows), failures=failures,
                    failure_count=p.failure_count, notice=p.notice, quarantine=p.quarantine)


class LiveDisplay(PlainDisplay):
    """The rich dashboard, redrawn by rich's refresh thread a few times a second (never
    per job): counts, progress bar and ETA, a row per slot, the latest failures."""

    def __init__(self, progress: Progress):
        super().__init__(progress)
        from rich.console import Console  # rich: only for a live dashboard
        from rich.live import Live

        self.tails = TailCache()
        self.size: Optional[tuple] = None       # the terminal's size at the last frame
        self.console = Console(stderr=False)
        self.live = Live(console=self.console, refresh_per_second=REFRESH_PER_SECOND,
                         transient=False, get_renderable=self._render, redirect_stdout=False,
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
            from rich.markup import escape  # rich: only for a live dashboard
            self.live.console.print(f"[bold]hog:[/bold] {escape(text)}", highlight=False,
                                    markup=True)
        except (OSError, ValueError):
            pass

    def _render(self):
        """The next frame, laid out for the terminal's size now (rich's refresh thread
        calls this under the live display's lock, before it redraws)."""
        size = tuple(self.console.size)
        if self.size is not None and size != self.size:
            fresh_screen(self.live)
        self.size = size
        return render(snapshot(self.p, self.tails), size[0], size[1])


def fresh_screen(live) -> None:
    """The terminal was resized: the last frame may have been re-wrapped by the terminal
    (or cut), so moving up over its lines would leave stale rows. Clear the screen and
    draw the next frame from its top-left corner instead."""
    from rich.control import Control  # rich: only for a live dashboard
    try:
        live._live_render._shape = None       # nothing to move up over: drawn afresh
        live.console.control(Control.home(), Control.clear())
    except (AttributeError, OSError, ValueError):
        pass
