"""What a slot does with the jobs handed to follow the one it runs (pre-dispatch): it
holds them in order, makes the first one's folder ahead (``state.staging``), starts it
the moment the current job ends if that job succeeded and nothing takes it back, or
gives back (``Withdrawn``) every job it holds, with whatever was made for them. A
handed job that comes only after the job ended starts by the same rule
(``_starts_late``). While ``HOLD_WHILE`` handed jobs or more wait (short jobs: the
runner hands several ahead), the reports of the jobs that end and start are held and
sent together (``hold``), once fewer are left (the runner has time to hand more before
the slot runs dry) or ``REPORT_S`` has passed: one wake-up of the runner for several
jobs. ``Consumer`` (``consumer.py``) is a ``Handoff``: it runs and
records the jobs; this is its side of the runner's pipe for the next ones.
"""
import os
import select
import time
from collections import deque
from typing import Deque, List, Optional

from hog.backends import wire
from hog.backends.attempt import Attempt
from hog.messages import Dispatch, Quit, Stop, StopHow, Withdraw, Withdrawn
from hog.state.jobdir import Layout, UnsafePath


class Handoff:
    """The slot's pipe to the runner and the job handed to follow the current one."""

    def __init__(self, conn, layout: Layout):
        self.conn = conn
        self.fd = conn.fileno()
        self.waiting = select.poll()    # has the runner said something? (a message is read
        self.waiting.register(self.fd, select.POLLIN)   # whole: none waits in a buffer)
        self.layout = layout
        self.runner_gone = False
        self.quitting = False       # told to Quit: no next job starts
        self.next: Deque[Dispatch] = deque()    # handed ahead: the first starts when
                                                # the job ends, the others after it
        self.last_ok = False        # the last job succeeded, and nothing followed it yet
        self.staged: Optional[Attempt] = None   # the first next job's folder, made ahead
        self.held: List = []        # reports not sent yet (``hold``)
        self.report_at: Optional[float] = None  # when they are sent at the latest

    def send(self, message) -> None:
        """Send ``message`` (a list: in one frame, one wake-up of the runner), after the
        reports held back, in the same frame."""
        if self.held:
            message = [*self.held, *(message if isinstance(message, list) else [message])]
            self.held, self.report_at = [], None
        if self.runner_gone:
            return
        if not wire.send(self.conn, message):
            self.runner_gone = True

    def hold(self, reports: List) -> None:
        """``reports`` (a ``Started``, the ``Ended`` before it) go with the next message
        this slot sends (a job's ``Ended``, a ``CannotWrite``), or after ``REPORT_S``
        at the latest (``report_due``): a short job's start and end then cost the runner
        one turn, not two, and several short jobs handed ahead one turn together."""
        if not self.held:
            self.report_at = time.time() + REPORT_S
        self.held.extend(reports)

    def report_due(self) -> None:
        """Send the reports held back, if their time has come."""
        if self.held and self.report_at is not None and time.time() >= self.report_at:
            self.send([])

    def _starts_late(self, d: Dispatch) -> bool:
        """``d`` was handed to follow this slot's last job, which ended before it came.
        It starts now if that job succeeded (as it would have, come in time), nothing
        already waiting in the pipe takes it back (a ``Withdraw`` of it, a
        ``Stop(KILL)``, ``Quit``), and nothing else holds it (``_may_start``); the
        runner, which knows the rule, waits for its ``Started`` or ``Withdrawn``."""
        ok, self.last_ok = self.last_ok, False
        if not ok:
            return False
        try:
            while not self.runner_gone and self.waiting.poll(0):
                message = wire.receive(self.conn)
                if isinstance(message, Withdraw) and message.index == d.job.index \
                        or isinstance(message, Stop) and message.how is StopHow.KILL:
                    ok = False
                else:           # (a Stop or Signal here is for the job that ended)
                    self._side_message(message)
        except (EOFError, OSError):
            self.runner_gone = True
        return ok and self._may_start(d)

    def _stage(self) -> None:
        """Make the folder of the first job handed to follow the running one ahead
        (``state.staging``), if it has none yet; nothing if that fails (it is made as
        it starts, the usual way)."""
        if not self.next or self.staged is not None:
            return
        d = self.next[0]
        if os.path.lexists(self.layout.folder(d.job.index)):
            return
        try:
            self.staged = Attempt.stage(self.layout, d)
        except (OSError, UnsafePath):
            self.staged = None

    def _staged_for(self, d: Dispatch) -> Optional[Attempt]:
        """The attempt made ahead for ``d``, moved into place; None if there is none or
        it cannot be moved (then removed)."""
        staged, self.staged = self.staged, None
        if staged is None:
            return None
        if (staged.d.job.index, staged.d.attempt) == (d.job.index, d.attempt) \
                and staged.publish():
            return staged
        staged.discard()
        return None

    def _unstage(self, index: Optional[int] = None) -> None:
        """A handed job given back (``index``; None: any): what was made ahead goes."""
        if self.staged is not None and index in (None, self.staged.d.job.index):
            self.staged.discard()
            self.staged = None

    def _next_to_start(self, failed: bool = False) -> Optional[Dispatch]:
        """The next job to start now the current one ended: what the runner said
        meanwhile is read first (a ``Withdraw`` may be waiting); none once the slot
        was told to quit or the runner is gone, nor after a job that did not succeed
        (``failed``): the runner then chooses what runs next (--max-failures, a
        quarantine, a retry first). A next job that does not start now takes every
        job handed after it back with it. The pipe is read even when nothing was handed
        yet: the next job may be there, sent while this one ran but not read before it
        ended."""
        try:
            while not self.runner_gone and self.waiting.poll(0):  # (conn.poll: 0.1 ms)
                self._side_message(wire.receive(self.conn))     # (a Stop: for the ended job)
        except (EOFError, OSError):
            self.runner_gone = True
        if not self.next:
            return None
        if failed or not self._may_start(self.next[0]):
            self._drop_next()
            return None
        return self.next.popleft()

    def _give_back(self, d: Dispatch) -> None:
        self._unstage(d.job.index)
        self.send(Withdrawn(d.slot, d.job.index))

    def _may_start(self, d: Dispatch) -> bool:
        """May a handed job start without the runner's say? Not once the slot was told
        to quit or the runner is gone, not after ``hog kill`` named it, and not while
        the disk is nearly full (the runner decides, once it knows)."""
        return not (self.runner_gone or self.quitting or _disk_low(self.layout.root)
                    or os.path.exists(self.layout.withdrawn_flag(d.job.index, d.attempt)))

    def _side_message(self, message) -> bool:
        """A message about the next job (a ``Dispatch``, ``Withdraw``, ``Quit``); True if
        it was one. (A Stop or Signal here was for a job that has ended.)"""
        if isinstance(message, Dispatch):
            self.next.append(message)
        elif isinstance(message, Withdraw):
            for d in self.next:
                if d.job.index == message.index:
                    self.next.remove(d)
                    self._give_back(d)
                    break
        elif isinstance(message, Quit):
            self._drop_next()
            self.quitting = True
        else:
            return False
        return True

    def _drop_next(self) -> None:
        """Every job handed ahead goes back."""
        while self.next:
            self._give_back(self.next.popleft())


LOW_DISK_BYTES = 2 ** 20
REPORT_S = 0.05     # a report held back waits at most this long for the next message
HOLD_WHILE = 3      # reports are held back while this many handed jobs still wait


def _disk_low(root: str) -> bool:
    """Under 1 MiB free where the job folders are: a handed job is not started without
    the runner (which holds every start while hog's writes are refused)."""
    try:
        fs = os.statvfs(root)
    except OSError:
        return True
    return fs.f_bavail * fs.f_frsize < LOW_DISK_BYTES
