"""``hog attach DIR``: the dashboard of a runner started elsewhere (detached, or in
another SSH session), built from the store and the job folders only.

Attaching reads; it never writes the store or signals anything, so leaving it
(``q``, Ctrl-C, a lost connection) cannot stop the runner. When the runner ends,
the final state is shown and attach exits 0. Without a terminal it prints plain
lines: what runs when attaching, then one line per job start and end.
"""
import os
import sys
import termios
import time
import tty
from typing import Dict, List, Optional, Tuple

from hog.engine.progress import LISTED_FAILURES
from hog.humanize import describe_end, end_line, eta_s, fmt_duration, start_line
from hog.model import Status, slot_label
from hog.signals import SignalWait
from hog.state.jobdir import RUNNER_LOG, STATE_DIR, Layout
from hog.state.jobread import read_info
from hog.state.reading import SweepReader
from hog.state.rows import JobRow, RunnerRow
from hog.views.dashboard import REFRESH_PER_SECOND, FailureView, SlotView, Snapshot, render
from hog.views.display import is_terminal
from hog.views.live import fresh_screen
from hog.views.tail import TailCache, last_line

FAILED = Status.having("counts_as_failure")
QUERY_S = 0.5          # the store is asked at most this often (and only when it changed)
RUNNERS_S = 1.0        # runner liveness (a pid check) at most this often
STARTING_S = 5.0       # how long a runner just started with --detach may take to register


class StoreView:
    """Snapshots of a sweep, from its store and job folders (read-only)."""

    def __init__(self, directory: str, store: SweepReader):
        self.directory = directory
        self.store = store
        self.layout = Layout(directory, store.meta("prefix") or "job_")
        self.tails = TailCache()
        self.version: Optional[int] = None
        self.next_query = 0.0
        self.next_runners = 0.0
        self.runners: List[RunnerRow] = []
        self.slot_layout: List[Tuple[int, int, str]] = []   # (runner, slot, gpu) last seen
        self.started_at = time.time()
        self.counts: Dict[str, int] = {}
        self.running: List[JobRow] = []
        self.failures: List[JobRow] = []
        self.stats = (0, 0.0)
        self.span: Tuple[Optional[float], Optional[float]] = (None, None)

    def name(self, row: JobRow) -> str:
        return row.name or self.layout.folder_name(row.id)

    def refresh(self, force: bool = False) -> None:
        """Re-read what changed: runners every second, jobs when the store changed."""
        now = time.monotonic()
        if force or now >= self.next_runners:
            self.next_runners = now + RUNNERS_S
            self.runners = self.store.live_runners()
            if self.runners:
                self.slot_layout = [(r.id, i, gpu) for r in self.runners
                                    for i, gpu in enumerate(g for g in r.gpus.split(",") if g)]
                self.started_at = min(r.started for r in self.runners)
        if not force and now < self.next_query:
            return
        self.next_query = now + QUERY_S
        version = self.store.data_version()
        if version == self.version and not force:
            return
        self.version = version
        self.counts = self.store.counts()
        self.running = self.store.rows_with_status("running")
        self.failures = self.store.latest_ended(FAILED, LISTED_FAILURES)
        self.stats = self.store.duration_stats()
        if not self.runners:    # (a past sweep: shown from its first start to its end)
            self.span = self.store.time_span()

    def snapshot(self, notice: str = "") -> Snapshot:
        c = self.counts
        by_place = {(r.runner, r.slot): r for r in self.running}
        several = len({runner for runner, _, _ in self.slot_layout}) > 1
        rows: List[SlotView] = []
        shown: List[str] = []

        def view(label: str, gpu: str, r: Optional[JobRow]) -> SlotView:
            if r is None:
                return SlotView(label, gpu)
            out, err = self.layout.out_path(r.id), self.layout.err_path(r.id)
            shown.extend((out, err))
            return SlotView(label, gpu, self.name(r), r.gpus or "", r.started,
                            self.tails.latest(out, err))

        for runner, slot, gpu in self.slot_layout:
            label = f"r{runner}:{slot}" if several else str(slot)
            rows.append(view(label, gpu, by_place.pop((runner, slot), None)))
        for r in sorted(by_place.values(), key=lambda r: (r.runner or 0, r.slot or 0)):
            rows.append(view(slot_label(r.slot) if r.slot is not None else "?", "", r))
        self.tails.forget_except(shown)
        failed = sum(c.get(s, 0) for s in FAILED)
        ran, duration = self.stats
        queued, running = c.get("queued", 0), c.get("running", 0)
        failures = tuple(FailureView(self.name(r), describe_end(r.status, r.exit_code, r.signal,
                                                                r.note),
                                     self.layout.err_path(r.id)) for r in self.failures)
        now, started_at = time.time(), self.started_at
        if not self.runners and not self.slot_layout and self.span[0] is not None:
            started_at, now = self.span[0], self.span[1] or self.span[0]   # a past sweep
        return Snapshot(title=self.directory, now=now, started_at=started_at,
                        succeeded=c.get("succeeded", 0), failed=failed,
                        cancelled=c.get("cancelled", 0), running=running, queued=queued,
                        eta_s=eta_s(queued, running, ran, duration, len(self.slot_layout)),
                        slots=tuple(rows), failures=failures, failure_count=failed,
                        notice=notice or self._requests(), ended=not self.runners,
                        quarantine="; ".join(why for r in self.runners
                                             for why in self.store.quarantined(r.id).values()))

    def _requests(self) -> str:
        asked = [r for r in self.runners if r.request]
        return "; ".join(f"runner {r.id} was asked to "
                         f"{'stop' if r.request == 'drain' else 'terminate its jobs'}"
                         for r in asked)


def counts_line(s: Snapshot) -> str:
    parts = [f"{s.succeeded} succeeded", f"{s.failed} failed", f"{s.running} running",
             f"{s.queued} queued"] + ([f"{s.cancelled} cancelled"] if s.cancelled else [])
    return ", ".join(parts)


# ------------------------------------------------------------------- terminal
class Keys:
    """Single key presses from a terminal on stdin (cbreak mode while attached)."""

    def __init__(self, stream):
        try:
            self.fd = stream.fileno() if stream.isatty() else None
        except (AttributeError, ValueError, OSError):
            self.fd = None
        self.saved = None

    def __enter__(self) -> "Keys":
        if self.fd is not None:
            try:
                self.saved = termios.tcgetattr(self.fd)
                tty.setcbreak(self.fd)
            except termios.error:
                self.fd = None
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            except termios.error:
                pass

    def fds(self) -> list:
        return [] if self.fd is None else [self.fd]

    def quit_pressed(self) -> bool:
        try:
            data = os.read(self.fd, 64)
        except OSError:
            data = b""
        if not data:            # the terminal went away: stop listening to it
            self.fd = None
            return False
        return b"q" in data.lower()


def attach_live(view: StoreView, sig: SignalWait) -> Optional[str]:
    """The dashboard, redrawn a few times a second until the runner ends (None), or
    the user leaves ("q" or a signal)."""
    from rich.console import Console  # rich: only for a live dashboard
    from rich.live import Live
    console = Console()
    live = Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False,
                redirect_stderr=False)
    hint = "q or Ctrl-C: leave (the runner goes on)"
    shown_size = None
    with Keys(sys.stdin) as keys:
        live.start()
        try:
            while True:
                view.refresh()
                snap = view.snapshot()
                width, height = size = tuple(console.size)
                if shown_size is not None and size != shown_size:
                    fresh_screen(live)
                shown_size = size
                live.update(_with_hint(snap, hint, width, height), refresh=True)
                if snap.ended:
                    view.refresh(force=True)
                    live.update(render(view.snapshot(), width, height), refresh=True)
                    return None
                ready = sig.wait(keys.fds(), 1 / REFRESH_PER_SECOND)
                if sig.exit_code is not None:
                    return "signal"
                if ready and keys.quit_pressed():
                    return "q"
        finally:
            live.stop()


def _with_hint(snap: Snapshot, hint: str, width: int, height: int):
    from rich.console import Group  # rich: only for a live dashboard
    from rich.text import Text
    return Group(render(snap, width, height - 1), Text(hint, style="dim", no_wrap=True,
                                                      overflow="ellipsis"))


# ------------------------------------------------------------------ plain lines
def attach_plain(view: StoreView, sig: SignalWait, out) -> Optional[str]:
    """What runs now, then a line per job start and end, until the runner ends."""
    store = view.store
    view.refresh(force=True)
    snap = view.snapshot()
    out.write(f"hog: attached to {view.directory}: {counts_line(snap)}\n")
    seen = set()
    for r in view.running:
        seen.add((r.id, r.attempt))
        out.write(_start(view, r) + "\n")
    out.flush()
    since, version = time.time(), None
    printed = {(r.id, r.attempt, r.ended) for r in store.ended_since(since - 1.0)}
    while True:
        ended = not view.runners
        if store.data_version() != version:
            version = store.data_version()
            started = [r for r in store.rows_with_status("running")
                       if (r.id, r.attempt) not in seen]
            rows = store.ended_since(since - 1.0)   # a second of slack: clocks may differ
            new = [r for r in rows if (r.id, r.attempt, r.ended) not in printed]
            last = rows[-1].ended if rows else None
            if last is not None:        # ended_since: rows that have ended, oldest first
                since = max(since, last)
            # a job that started and ended between two looks gets its start line too
            started += [r for r in new if (r.id, r.attempt) not in seen]
            events = [(r.started or 0.0, 0, r) for r in started] + [(r.ended, 1, r) for r in new]
            counts = store.counts() if new else {}
            finished = sum(n for s, n in counts.items() if Status(s).finished)
            for _, kind, r in sorted(events, key=lambda e: (e[0], e[1])):
                if kind == 0:
                    seen.add((r.id, r.attempt))
                    out.write(_start(view, r) + "\n")
                    continue
                printed.add((r.id, r.attempt, r.ended))
                duration = (r.ended - r.started) if r.started and r.ended else 0.0
                out.write(end_line(view.name(r), r.status == "succeeded",
                                   describe_end(r.status, r.exit_code, r.signal, r.note),
                                   duration, finished, sum(counts.values()),
                                   at=r.ended) + "\n")
            out.flush()
        if ended:
            return None
        sig.wait([], QUERY_S)
        if sig.exit_code is not None:
            return "signal"
        view.refresh()


def _start(view: StoreView, r: JobRow) -> str:
    pid = r.pid
    if pid is None:     # the runner stores it with its next write: INFO has it already
        info = read_info(view.layout, r.id)
        pid = info.get("pid") if info.get("attempt") == r.attempt else None
    return start_line(r.slot if r.slot is not None else 0, view.name(r), r.gpus or "",
                      pid or "-", at=r.started)


# ------------------------------------------------------------------ attaching
def attach(directory: str, store: SweepReader, plain: bool = False) -> int:
    """``hog attach DIR``: follow the sweep's runner until it ends (exit 0) or the user
    leaves (the signal's exit code); ``plain``: plain lines even on a terminal."""
    view = StoreView(directory, store)
    with SignalWait() as sig:
        view.refresh(force=True)
        if not view.runners and _just_detached(directory):
            deadline = time.monotonic() + STARTING_S    # its runner is on its way
            while not view.runners and time.monotonic() < deadline \
                    and sig.exit_code is None:
                sig.wait([], 0.1)
                view.refresh(force=True)
        if not view.runners:
            return _no_runner(view, live=is_terminal() and not plain)
        if is_terminal() and not plain:
            left = attach_live(view, sig)
        else:
            left = attach_plain(view, sig, sys.stdout)
    final = view.snapshot()
    if left is None:
        print(f"hog: the runner has ended: {counts_line(final)} "
              f"(elapsed {fmt_duration(final.now - final.started_at)})", flush=True)
        return 0
    print(f"hog: left {directory}; its runner goes on (hog attach {directory} to come "
          f"back, hog stop {directory} to stop it)", file=sys.stderr, flush=True)
    return sig.exit_code or 0


def _just_detached(directory: str) -> bool:
    """Was a runner started with --detach a moment ago (it may not be registered yet)?"""
    log = os.path.join(directory, STATE_DIR, RUNNER_LOG)
    try:
        recent = time.time() - os.path.getmtime(log) < STARTING_S
    except OSError:
        return False
    return recent and last_line(log).startswith("--- hog started")    # and nothing since


def _no_runner(view: StoreView, live: bool) -> int:
    snap = view.snapshot()
    if live:
        from rich.console import Console  # rich: only for a live dashboard
        console = Console()
        console.print(render(snap, console.size.width))
    else:
        for f in snap.failures:
            print(f"hog: failed: {f.name} {f.how} {f.err_path}")
    print(f"hog: no runner is active on {view.directory}: {counts_line(snap)}")
    return 0
