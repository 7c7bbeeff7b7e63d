"""The INFO file's format: what an attempt's INFO holds (``info_fields``) and how it is
written (``render_info``).

INFO is emitted as YAML by hand: every string is a YAML double-quoted scalar in plain
ASCII, every other character escaped (``\\t``, ``\\x1b``, ``\\u00e9`` and, for a
character beyond the BMP such as an emoji, ``\\U0001f600``: never a UTF-16 surrogate
pair, which YAML reads back as two broken characters). That keeps the per-job cost to
a few microseconds, and ``yaml.safe_load`` reads every string back exactly. Reading
INFO back is ``jobread.read_info``'s.
"""
import re
from typing import Iterable, Optional

from hog.model import JobProcess, Status
from hog.proc import host
from hog.state.files import iso

HOST = host()


def _scalar(value) -> str:
    kind = type(value)
    if kind is str:
        return quoted(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int or kind is float or isinstance(value, (int, float)):
        return repr(value)
    return quoted(str(value))


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'[^\x20-\x7e]|["\\]')


def _escape(match: "re.Match[str]") -> str:
    char = match.group()
    code = ord(char)
    if char in _ESCAPES:
        return _ESCAPES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar of printable ASCII that reads back exactly
    (a lone surrogate, which no input should let through, is written as ``\\udXXX``)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'         # (the usual case: nothing to escape)
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def render_info(fields: dict) -> str:
    """YAML text for a flat mapping (lists of strings become flow sequences)."""
    lines = []
    for key, value in fields.items():
        kind = type(value)      # (the usual kinds first, by exact type: once a field)
        if kind is str:
            text = quoted(value)
        elif value is None:
            text = "null"
        elif kind is int or kind is float:
            text = repr(value)
        elif isinstance(value, (list, tuple)):
            text = f"[{', '.join(_scalar(v) for v in value)}]"
        else:
            text = _scalar(value)
        lines.append(f"{key}: {text}")
    return "\n".join(lines) + "\n"


def info_fields(*, name: str, index: int, command: str, gpu_ids: Iterable[str], slot: int,
                pid: Optional[int], attempt: int, status: Status, exit_code: Optional[int] = None,
                signal: Optional[str] = None, started: Optional[float] = None,
                ended: Optional[float] = None) -> dict:
    return {
        "name": name,
        "index": index,
        "command": command,
        "gpus": list(gpu_ids),
        "slot": slot,
        "host": HOST,
        "pid": pid,
        "attempt": attempt,
        "status": status.value,
        "exit_code": exit_code,
        "signal": signal,
        "started": iso(started),
        "ended": iso(ended),
        "duration_s": None if ended is None or started is None else round(ended - started, 3),
    }


def info_process(info: dict, attempt: int) -> Optional[JobProcess]:
    """Who attempt ``attempt``'s job is, by its INFO (written by its slot as it starts,
    before anyone else hears of it): None for an INFO of another attempt or host, or
    one without the process's start time (a pid alone may name another process now)."""
    if info.get("host") != HOST or info.get("attempt") != attempt:
        return None
    try:
        pid = int(info["pid"])
        start = str(info.get("proc_start") or "")
        if not start:
            return None
        return JobProcess(pid, int(info.get("pgid", pid)), int(info.get("sid", pid)), start)
    except (KeyError, TypeError, ValueError):
        return None
