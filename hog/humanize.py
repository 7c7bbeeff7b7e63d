"""How hog words things for people: durations, paths as the user would type them, how
a job ended, the time left, and the ``[hog HH:MM:SS] start`` / ``done`` / ``FAIL``
lines. Pure functions of their arguments (the lines' time: now when not given); the
runner's display, ``hog attach``, ``hog status``, the report and the hooks all word
things through here."""
import os
import re
import sys
import time
from typing import Optional, TextIO, Union

from hog.model import slot_label

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` safe to put on a terminal: control characters (a tab, an escape, a
    carriage return, DEL) shown as ``\\t``, ``\\x1b``... so a job's name or command
    can never move the cursor or recolour the screen."""
    if text.isprintable():
        return text
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)


def tolerant_streams(*streams: TextIO) -> None:
    """Make ``streams`` (stdout and stderr by default) write what their encoding cannot
    hold as ``\\U0001f600``-style escapes instead of raising (``LANG=C``,
    ``PYTHONIOENCODING=ascii``): a name with an emoji must never crash or vanish."""
    for stream in streams or (sys.stdout, sys.stderr):
        try:
            getattr(stream, "reconfigure")(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass


def fmt_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def shown_path(path: str) -> str:
    """A path as the user would type it: relative when under the working directory."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def describe_end(status: str, exit_code: Optional[int], signal: Optional[str],
                 note: str = "") -> str:
    """How a job ended, in a few words: ``exit 3``, ``timeout, killed by SIGTERM``."""
    if signal:
        how = f"killed by {signal}"
    elif exit_code is not None:
        how = f"exit {exit_code}"
    else:
        how = note or "did not run"
    return how if status in ("failed", "succeeded") else f"{status}, {how}"


def eta_s(queued: Optional[int], running: int, finished: int, duration_sum: float,
          slots: int) -> Optional[float]:
    """Time left, from the mean duration of the jobs that ended so far."""
    if queued is None or finished == 0:
        return None
    mean = duration_sum / finished
    return (queued + running / 2) * mean / max(1, slots)


def line_prefix(at: Optional[float] = None) -> str:
    """``[hog 12:34:56]``: a plain line's prefix, with the local time ``at`` (default now)."""
    return time.strftime("[hog %H:%M:%S]", time.localtime(time.time() if at is None else at))


def start_line(slot: int, name: str, gpus: str, pid: Union[int, str],
               at: Optional[float] = None) -> str:
    """The plain display's line for a job that started (at ``at``, default now)."""
    return (f"{line_prefix(at)} start {printable(name)} slot {slot_label(slot)} "
            f"gpus {gpus or '-'} pid {pid}")


def end_line(name: str, ok: bool, how: str, duration_s: float, finished: int,
             total: Optional[int], at: Optional[float] = None) -> str:
    """The plain display's line for a job that ended (at ``at``, default now):
    ``[hog 12:34:56] done NAME exit 0 in ...``."""
    return (f"{line_prefix(at)} {'done ' if ok else 'FAIL '}{printable(name)} {how} "
            f"in {duration_s:.2f}s ({finished}{'/' + str(total) if total else ''})")
