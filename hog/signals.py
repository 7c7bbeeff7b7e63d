"""Signal handlers that only set flags; the main loop acts on them."""
import ctypes
import select
import signal
import socket
from typing import Dict, Iterable, Optional

from hog.errors import EXIT_HUP, EXIT_INT, EXIT_TERM


class SignalFlags:
    """Counts the signals received; ``install`` wires the handlers."""

    def __init__(self) -> None:
        self.counts: Dict[int, int] = {}

    def _handler(self, signum, _frame) -> None:
        self.counts[signum] = self.counts.get(signum, 0) + 1

    def install(self, signals: Iterable[int], wakeup_fd: Optional[int] = None) -> None:
        for sig in signals:
            signal.signal(sig, self._handler)
        if wakeup_fd is not None:
            signal.set_wakeup_fd(wakeup_fd, warn_on_full_buffer=False)

    def count(self, sig: int) -> int:
        return self.counts.get(sig, 0)

    def take(self, sig: int) -> int:
        """How many ``sig`` arrived since the last ``take``: each acted on once."""
        return self.counts.pop(sig, 0)


def set_parent_death_signal(sig: int) -> None:
    """Linux: deliver ``sig`` to this process when its parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class SignalWait:
    """For a command that waits in ``select()`` (``hog attach``, ``hog logs -f``): while
    in use, SIGINT, SIGTERM and SIGHUP only set a flag and make ``readable`` fd wake up,
    and ``exit_code`` says which came first (130, 143, 129), or None."""

    CODES: Dict[int, int] = {signal.SIGINT: EXIT_INT, signal.SIGTERM: EXIT_TERM,
                             signal.SIGHUP: EXIT_HUP}

    def __enter__(self) -> "SignalWait":
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self.fd = self._r.fileno()
        self.first: Optional[int] = None
        self._old = {s: signal.signal(s, self._handler) for s in self.CODES}
        self._old_fd = signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)
        return self

    def _handler(self, signum, _frame) -> None:
        if self.first is None:
            self.first = signum

    def __exit__(self, *exc) -> None:
        signal.set_wakeup_fd(self._old_fd)
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._r.close()
        self._w.close()

    @property
    def exit_code(self) -> Optional[int]:
        return None if self.first is None else self.CODES[self.first]

    def wait(self, fds, timeout: float) -> list:
        """``select`` on ``fds`` and the signal fd; the ready ones among ``fds``."""
        try:
            ready, _, _ = select.select(list(fds) + [self.fd], [], [], timeout)
        except InterruptedError:
            return []
        if self.fd in ready:
            try:
                while self._r.recv(64):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
        return [fd for fd in ready if fd != self.fd]
