"""What a job used: the kernel's accounting of its reaped processes, summed (CPU) and
maxed (resident memory) into a ``model.Usage``. Figures only: the reaping itself is
``hog.backends.spawn``'s.

They are the kernel's accounting of reaped processes, read as they are
reaped (``os.wait4``), never by polling: the leader's resource usage covers it and
every descendant reaped inside the job (a shell's waited-for commands); what the job
left behind is reaped by its slot (``end_descendants``, the slot being their
subreaper) and added (``Reaped``). Not covered: processes still alive when the slot
gives up on them, and those reaped by someone else (no subreaper: init).
"""
from hog.model import Usage

__all__ = ["Reaped"]


class Reaped:
    """The resource usage of reaped processes, summed (CPU) and maxed (resident memory)."""

    def __init__(self) -> None:
        self.user = 0.0
        self.system = 0.0
        self.max_rss_kib = 0
        self.any = False

    def add(self, ru) -> None:
        self.user += ru.ru_utime
        self.system += ru.ru_stime
        self.max_rss_kib = max(self.max_rss_kib, ru.ru_maxrss)   # KiB on Linux
        self.any = True

    def usage(self) -> Usage:
        if not self.any:
            return Usage()
        return Usage(cpu_user_s=round(self.user, 3), cpu_system_s=round(self.system, 3),
                     max_rss_bytes=self.max_rss_kib * 1024)
