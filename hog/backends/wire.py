"""Messages between hog's own processes (runner, slot processes, the Ray bridge) over
``multiprocess`` pipes: the ``hog.messages``, pickled, one per message (a slot
sends the ``Ended`` of a job and the ``Started`` of the next one it handed over as
one list: one wake-up of the runner).

``Reader`` is the runner's side of a slot's pipe: every message the pipe holds, in
one read."""
import os
import pickle
from typing import Any, List


def send(conn, message) -> bool:
    """Send ``message``; False when the other end is gone (its EOF is seen by whoever
    reads from it)."""
    try:
        conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        return True
    except OSError:
        return False


def receive(conn):
    """The next message; raises EOFError or OSError when the other end is gone."""
    return pickle.loads(conn.recv_bytes())


class Reader:
    """The messages of one connection as they come: all that the pipe holds in one read
    of its file descriptor, not two reads per message and a poll to ask whether more
    are waiting (``Connection.recv_bytes``). The frames are ``Connection``'s own (a
    4-byte big-endian length, or -1 and an 8-byte one), so the other end sends with
    ``send``. Nothing else may read from the connection."""

    CHUNK = 1 << 16

    def __init__(self, conn) -> None:
        self.fd = conn.fileno()
        self.buf = bytearray()
        self.ended = False      # the other end is gone (seen in the middle of a frame)

    def messages(self) -> List[Any]:
        """The messages waiting (call it when the connection is readable: it reads at
        least once). Raises EOFError once the other end is gone and nothing is left."""
        chunk = b"" if self.ended else os.read(self.fd, self.CHUNK)
        if not chunk:
            raise EOFError
        buf = self.buf
        buf += chunk
        out = []
        while len(buf) >= 4:
            size, head = int.from_bytes(buf[:4], "big", signed=True), 4
            if size == -1 and self._filled(12):
                size, head = int.from_bytes(buf[4:12], "big"), 12
            if size < 0 or not self._filled(head + size):
                break       # (the rest of a frame never came: its sender is gone)
            out.append(pickle.loads(buf[head:head + size]))
            del buf[:head + size]
        return out

    def _filled(self, n: int) -> bool:
        """At least ``n`` bytes in the buffer: a frame is sent whole, so the rest of
        one begun is on its way. False if the other end went first."""
        while len(self.buf) < n:
            chunk = os.read(self.fd, max(n - len(self.buf), self.CHUNK))
            if not chunk:
                self.ended = True
                return False
            self.buf += chunk
        return True
