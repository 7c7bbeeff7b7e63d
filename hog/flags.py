"""Signal handlers that only set flags; the main loop acts on them."""
import signal
from typing import Iterable, Optional


class SignalFlags:
    """Counts the signals received; ``install`` wires the handlers."""

    def __init__(self) -> None:
        self.counts = {}

    def _handler(self, signum, _frame) -> None:
        self.counts[signum] = self.counts.get(signum, 0) + 1

    def install(self, signals: Iterable[int], wakeup_fd: Optional[int] = None) -> None:
        for sig in signals:
            signal.signal(sig, self._handler)
        if wakeup_fd is not None:
            signal.set_wakeup_fd(wakeup_fd, warn_on_full_buffer=False)

    def count(self, sig: int) -> int:
        return self.counts.get(sig, 0)


def set_parent_death_signal(sig: int) -> None:
    """Linux: deliver ``sig`` to this process when its parent dies (no-op elsewhere)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
