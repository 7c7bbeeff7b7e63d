"""Messages between hog's own processes (runner, slot processes, the Ray bridge) over
``multiprocess`` pipes: the ``hog.messages``, pickled, one per message (a slot
sends the ``Ended`` of a job and the ``Started`` of the next one it handed over as
one list: one wake-up of the runner).

The messages of every job (``Dispatch``, ``Started``, ``Ended``, ``Withdrawn``) go as
flat tuples of their fields (``encode``), which pickle reads back in a tenth of the
time it takes to rebuild the dataclasses field by field from their pickled ``__dict__``
(names included in every frame); ``decode`` makes the same frozen dataclasses again.
Any other message goes pickled as it is.

``Reader`` is the runner's side of a slot's pipe: every message the pipe holds, in
one read."""
import os
import pickle
from dataclasses import fields
from operator import attrgetter
from typing import Any, Callable, Dict, List, Tuple

from hog.messages import Dispatch, Ended, Started, Withdrawn
from hog.model import Job, JobProcess, Outcome, Status, Usage


def send(conn, message) -> bool:
    """Send ``message``; False when the other end is gone (its EOF is seen by whoever
    reads from it)."""
    try:
        conn.send_bytes(pickle.dumps(encode(message), pickle.HIGHEST_PROTOCOL))
        return True
    except OSError:
        return False


def receive(conn):
    """The next message; raises EOFError or OSError when the other end is gone."""
    return decode(pickle.loads(conn.recv_bytes()))


# ------------------------------------------------------------ the job's messages
# On the wire a message is an item or a list of items; an item is a tuple: a tag and
# the fields of one of the classes below (those that hold another of them, or a
# Status, by its own item or value), or 0 and any other object.
_Enc = Callable[[Any], Any]
_CLASSES: Dict[type, Tuple[int, Callable[[Any], tuple], Tuple[Tuple[int, _Enc], ...]]] = {}
_BY_TAG: Dict[int, Tuple[type, Tuple[str, ...], Tuple[Tuple[int, _Enc], ...]]] = {}
_STATUS = {status.value: status for status in Status}


def _item(obj: Any) -> Any:
    return None if obj is None else encode(obj)


def _object(item: Any) -> Any:
    return None if item is None else _decode_item(item)


def _flat(cls: type, **nested: Tuple[_Enc, _Enc]) -> None:
    """Send ``cls`` as its fields in order; ``nested``: the fields sent as an item of
    their own (or a Status as its value), with how each is made back."""
    assert not hasattr(cls, "__post_init__") and "__slots__" not in vars(cls), cls
    names = tuple(f.name for f in fields(cls))
    tag = len(_CLASSES) + 1
    encoders = tuple((names.index(n), enc) for n, (enc, _) in nested.items())
    decoders = tuple((names.index(n) + 1, dec) for n, (_, dec) in nested.items())
    _CLASSES[cls] = (tag, attrgetter(*names), encoders)
    _BY_TAG[tag] = (cls, names, decoders)


_NESTED = (_item, _object)
_flat(Usage)
_flat(JobProcess)
_flat(Job)
_flat(Outcome, status=(lambda s: s.value, _STATUS.__getitem__), usage=_NESTED)
_flat(Ended, outcome=_NESTED)
_flat(Started, proc=_NESTED)
_flat(Withdrawn)
_flat(Dispatch, job=_NESTED)


def encode(message: Any) -> Any:
    """What goes on the wire for ``message`` (a list: each of its items)."""
    kind = _CLASSES.get(type(message))
    if kind is None:
        return [encode(m) for m in message] if type(message) is list else (0, message)
    tag, values, encoders = kind
    if not encoders:
        return (tag, *values(message))
    out = [tag, *values(message)]
    for i, enc in encoders:
        out[i + 1] = enc(out[i + 1])
    return tuple(out)


def decode(payload: Any) -> Any:
    """The message ``encode`` made ``payload`` of."""
    if type(payload) is list:
        return [decode(item) for item in payload]
    return _decode_item(payload)


def _decode_item(item: tuple) -> Any:
    if item[0] == 0:
        return item[1]
    cls, names, decoders = _BY_TAG[item[0]]
    obj: Any = object.__new__(cls)  # (frozen dataclasses without __post_init__: as
    state = obj.__dict__            # model.evolve makes them)
    state.update(zip(names, item[1:]))
    for i, dec in decoders:
        state[names[i - 1]] = dec(item[i])
    return obj


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
            out.append(decode(pickle.loads(buf[head:head + size])))
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
