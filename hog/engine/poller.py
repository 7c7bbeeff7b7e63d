"""What the runner's loop waits on, with one ``select.poll`` kept from turn to turn:
file descriptors are registered as the set changes, not a selector built and torn down
for every wait (as ``multiprocess.connection.wait`` does), on a loop that turns once or
more per job."""
import math
import select
from typing import Any, Dict, List, Optional, Sequence


def _fd(obj: Any) -> int:
    return obj if isinstance(obj, int) else obj.fileno()


class Poller:
    def __init__(self) -> None:
        self._poll = select.poll()
        self._fds: Dict[int, Any] = {}

    def wait(self, objs: Sequence[Any], timeout: Optional[float]) -> List[Any]:
        """Those of ``objs`` (connections, sockets, fds) that are readable or closed at
        the other end, waiting up to ``timeout`` seconds (None: until one is)."""
        fds = {_fd(obj): obj for obj in objs}
        if fds.keys() != self._fds.keys():
            for fd in self._fds.keys() - fds.keys():
                self._poll.unregister(fd)
            for fd in fds.keys() - self._fds.keys():
                self._poll.register(fd, select.POLLIN)
        self._fds = fds
        ms = None if timeout is None else math.ceil(max(0.0, timeout) * 1000)
        return [fds[fd] for fd, _ in self._poll.poll(ms)]
