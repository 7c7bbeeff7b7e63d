"""Parse a ``--gpus`` spec into the list of slot GPU ids.

``0,0,1``: two slots on GPU 0, one on GPU 1. ``0-3``: a range. ``0-3x2``: the item
repeated twice (0,1,2,3,0,1,2,3). ``all`` (or no spec): every discovered GPU; when
discovery finds none, the error says to give ids or ``none``. ``none``: no GPU slot
at all (a CPU-only runner: only its ``--cpu-slots`` run jobs).
Ids are labels: integers, or device UUIDs such as ``GPU-5f1c...`` / ``MIG-...``.
A spec gives at most ``MAX_SLOTS`` slots (each is a process), counted before any
range is expanded, so ``0-999999999`` is refused at once rather than built.
"""
import re
from typing import Callable, List, Optional

from hog.errors import UsageError

_ITEM = re.compile(r"^(?P<body>[^x]+?)(?:x(?P<times>\d+))?$")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z/-]+$")

MAX_SLOTS = 1024
NONE = "none"           # --gpus none: CPU slots only


def is_none(spec: Optional[str]) -> bool:
    return spec is not None and spec.strip().lower() == NONE


def parse_gpus(spec: Optional[str], discover: Callable[[], List[str]]) -> List[str]:
    """Return the slot list for ``spec``; ``discover`` is called for ``all``/None."""
    if is_none(spec):
        return []
    if spec is None or spec.strip().lower() == "all":
        try:
            return discover()
        except UsageError as e:
            raise UsageError(f"{e}; or --gpus none to run CPU-only (gpus=0) jobs in "
                             f"--cpu-slots slots") from None
    slots: List[str] = []
    for raw in spec.split(","):
        item = raw.strip()
        slots.extend(_expand(item, spec, MAX_SLOTS - len(slots)))
    return slots


def _too_many(spec: str) -> UsageError:
    return UsageError(f"--gpus {spec!r}: more than {MAX_SLOTS} slots; hog runs at most "
                      f"{MAX_SLOTS} slots at once")


def _expand(item: str, spec: str, room: int) -> List[str]:
    """The slots of one item, or a UsageError if they are more than ``room``."""
    bad = f"--gpus {spec!r}: bad item {item!r} (expected an id like 0, a range like 0-3, " \
          f"an id or range with a repeat like 0x2 or 0-3x2, 'all' or 'none')"
    if not item:
        raise UsageError(bad)
    if _UUID.match(item):
        if room < 1:
            raise _too_many(spec)
        return [item]
    m = _ITEM.match(item)
    if not m:
        raise UsageError(bad)
    body, times = m.group("body"), m.group("times")
    n = int(times) if times is not None else 1
    if n < 1:
        raise UsageError(f"--gpus {spec!r}: repeat count in {item!r} must be at least 1")
    if body.isdigit():
        lo = hi = int(body)
    else:
        r = _RANGE.match(body)
        if not r:
            raise UsageError(bad)
        lo, hi = int(r.group(1)), int(r.group(2))
        if hi < lo:
            raise UsageError(f"--gpus {spec!r}: range {body!r} runs backwards")
    if (hi - lo + 1) * n > room:
        raise _too_many(spec)
    return [str(i) for i in range(lo, hi + 1)] * n
