"""The Ray bridge's writes of one job folder, while the disk may refuse them.

The bridge writes each attempt's folder on hog's machine from what its Ray task
streams back. A write the disk refuses (full, over quota, read-only, the output
directory gone: ``hog.state.diskguard``) is kept, with every write after it, and tried
again with a backoff (``FolderWrites``); the runner hears once that the slot cannot
write (``CannotWrite``) and once that it can again. Meanwhile the bridge reads no more
of that task's stream, so Ray holds its output back, and the job goes on. When the
slot is told to stop, or the output directory is gone, the writes are given up (the
last is tried once): the outcome is then reported as it is. ``OutputWrite`` appends
a piece of output so that a write the disk cut short is resumed, never repeated.
"""
import time
from typing import Callable, List, Optional

from hog.backends.attempt import Attempt
from hog.messages import CannotWrite
from hog.state.diskguard import Backoff, cannot_write, gone


class FolderWrites:
    """The writes of slot ``slot``'s attempt folder the disk refused, in order; ``send``
    tells the runner."""

    def __init__(self, slot: int, state_dir: str, send: Callable[[object], None]):
        self.slot = slot
        self.state_dir = state_dir
        self.send = send
        self.queue: List[Callable[[], None]] = []
        self.retry_at = 0.0
        self.backoff = Backoff()
        self.why = ""               # what the runner was told, while it waits
        self.given_up = False

    @property
    def waiting(self) -> bool:
        """Are writes waiting for the disk (then the task's stream is not read)?"""
        return bool(self.queue)

    def due(self, now: float) -> bool:
        return bool(self.queue) and now >= self.retry_at

    def add(self, write: Callable[[], None], stopping: bool) -> bool:
        """``write``, now, or after those still waiting; False when the writes are given
        up (now or before). ``UnsafePath`` (a planted link) is the caller's."""
        if self.given_up:
            return False
        self.queue.append(write)
        return len(self.queue) > 1 or self.flush(stopping)

    def flush(self, stopping: bool) -> bool:
        """Make the waiting writes in order: the first the disk refuses stays and is
        tried again after a backoff (``stopping``: or the writes are given up); False
        when they were given up."""
        while self.queue:
            try:
                self.queue[0]()
            except OSError as e:
                why = cannot_write(e)
                if why is None:
                    raise
                if isinstance(e, FileNotFoundError) and not gone(self.state_dir):
                    return self.give_up()   # its folder was removed: nothing to try again
                if not self.why:
                    self.why = why
                    self.send(CannotWrite(self.slot, why))
                if stopping or gone(self.state_dir):
                    return self.give_up()
                self.retry_at = time.monotonic() + self.backoff.next()
                return True
            self.queue.pop(0)
        self.backoff.reset()
        if self.why:
            self.why = ""
            self.send(CannotWrite(self.slot, ""))   # it went through
        return True

    def give_up(self) -> bool:
        self.queue.clear()
        self.given_up = True
        return False


class OutputWrite:
    """``data`` to append to the attempt's ``"out"`` or ``"err"``: what a refused write
    did not take is what is tried again (nothing twice)."""

    def __init__(self, attempt: Callable[[], Optional[Attempt]], kind: str, data: bytes):
        self.attempt = attempt
        self.kind = kind
        self.view = memoryview(data)

    def __call__(self) -> None:
        attempt = self.attempt()
        while self.view and attempt is not None:
            self.view = self.view[attempt.write_some(self.kind, self.view):]
