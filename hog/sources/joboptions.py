"""Per-job options shared by every source: validation and units.

The one validator of job options: a text line's ``# hog: key=value`` directive, a
YAML entry, a yielder's (or ``hog.run``'s) mapping and ``hog add``'s options all go
through ``job_kwargs``, so every option (``KNOWN``) is accepted by every source, means
the same thing wherever it is written, and a malformed one is an input error, never
ignored. Each option takes its mapping form (``env: {A: 1}``, ``resources: {lic: 1}``,
``after: [a, b]``) and a text form a directive or a command-line option can spell
(``env='A=1 B=2'`` or a list of ``NAME=VALUE``, ``resources='lic=1 disk=2'``,
``after=a,b``); ``memory`` is the per-GPU ``memory`` resource (``memory=20G``).

Every value must also be one hog can carry to the job and record: text holds no NUL
byte and no lone surrogate, numbers are finite, and each has a documented bound:

- ``priority`` fits a signed 64-bit integer (the store keeps it as one);
- ``retries`` is at most ``MAX_RETRIES``;
- ``timeout`` is at most ``MAX_TIMEOUT_S`` (24 days: a slot waits on a job with one
  ``poll``, whose timeout is a 32-bit count of milliseconds).
"""
import math
import re
import shlex
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hog.errors import InputError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40, "P": 2 ** 50}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

KNOWN = ("cmd", "name", "gpus", "resources", "memory", "env", "cwd", "timeout", "retries",
         "priority", "gpu_ids", "after")

PRIORITY_MIN, PRIORITY_MAX = -2 ** 63, 2 ** 63 - 1
MAX_RETRIES = 1000
MAX_TIMEOUT_S = 24 * 86400.0


def check_text(text: str, what: str, where: str) -> str:
    """``text`` if a process can be given it and the store can record it: no NUL byte,
    no lone surrogate (any valid Unicode, emoji included, is fine)."""
    if "\x00" in text:
        raise InputError(f"{what} contains a NUL byte, which no program can be given", where)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{what} contains {text[e.start]!r}, a lone surrogate that is not "
                         f"valid text", where) from None
    return text


def near_miss(key: str, known: Sequence[str]) -> Optional[str]:
    """The known option ``key`` is one edit away from (a letter added, dropped, changed
    or two swapped), ignoring case; None if there is none."""
    lowered = key.lower()
    for option in known:
        if key != option and (lowered == option or _one_edit(lowered, option)):
            return option
    return None


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def _names(value: Any) -> Tuple[str, ...]:
    """A list of names: ``[a, b]`` or ``"a,b"``."""
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    elif isinstance(value, (str, int)):
        items = [v.strip() for v in str(value).split(",")]
    else:
        raise ValueError(value)
    if not items or not all(items):
        raise ValueError(value)
    return tuple(items)


def _float(value: float) -> float:
    try:
        return float(value)
    except OverflowError:           # an int beyond any float
        raise ValueError(value) from None


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``4h``, ``1.5d``; ValueError if not one."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        seconds = _float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(value)
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(value)
    return seconds


def parse_amount(value: Any) -> float:
    """A resource amount: a number, or a size such as ``20G`` (bytes)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        amount = _float(value)
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ValueError(value)
        unit = (m.group(2) or "").upper().replace("IB", "").replace("B", "") or ""
        amount = float(m.group(1)) * _SIZE_UNITS[unit or ""]
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(value)
    return amount


def _int(value: Any, minimum: Optional[int], maximum: Optional[int] = None) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    number = int(value) if isinstance(value, int) else int(str(value).strip())
    if minimum is not None and number < minimum:
        raise ValueError(value)
    if maximum is not None and number > maximum:
        raise ValueError(value)
    return number


def _gpus(value: Any):
    """How many GPUs: a whole number, or a fraction below 1 (one GPU shared, Ray)."""
    try:
        return _int(value, 0)
    except ValueError:
        if isinstance(value, bool):
            raise
        amount = float(str(value).strip()) if not isinstance(value, float) else value
        if not 0 < amount < 1:      # NaN too
            raise ValueError(value) from None
        return amount


def job_kwargs(raw: Mapping[str, Any], where: str, bare_resources: bool = False) -> Dict[str, Any]:
    """Validate job options (all but ``cmd``) into ``Job`` keyword arguments.

    ``bare_resources``: any other ``key=number`` is a named resource (text directives);
    in mappings (YAML, yielders) resources go under ``resources`` and an unknown key
    is an error, so a typo never runs a job unconstrained."""
    out: Dict[str, Any] = {}
    resources: Dict[str, float] = {}

    def bad(key: str, expected: str) -> InputError:
        return InputError(f"bad value {raw[key]!r} for {key!r}: expected {expected}", where)

    for key, value in raw.items():
        if key == "cmd":
            continue
        if key == "name":
            if not isinstance(value, (str, int)) or not str(value).strip():
                raise bad(key, "a non-empty name")
            out["name"] = check_text(str(value).strip(), "the job name", where)
        elif key == "gpus":
            try:
                out["gpus"] = _gpus(value)
            except ValueError:
                raise bad(key, "a whole number of GPUs, 0 or more, or a fraction of one "
                               "such as 0.5 (--backend ray)") from None
        elif key in ("retries",):
            try:
                out[key] = _int(value, 0, MAX_RETRIES)
            except ValueError:
                raise bad(key, f"a whole number from 0 to {MAX_RETRIES}") from None
        elif key == "priority":
            try:
                out[key] = _int(value, PRIORITY_MIN, PRIORITY_MAX)
            except ValueError:
                raise bad(key, "a whole number that fits in 64 bits, from -2**63 to 2**63-1 "
                               "(higher runs first)") from None
        elif key == "timeout":
            try:
                out[key] = parse_duration(value)
            except ValueError:
                raise bad(key, "a duration such as 90s, 30m or 4h") from None
            if out[key] > MAX_TIMEOUT_S:
                raise bad(key, "a duration of at most 24d (the longest timeout a slot can "
                               "wait for)")
        elif key == "gpu_ids":
            try:
                out[key] = _names(value)
            except ValueError:
                raise bad(key, "GPU ids such as 1 or 0,1") from None
            for gpu in out[key]:
                check_text(gpu, "a GPU id in gpu_ids", where)
        elif key == "after":
            try:
                out[key] = _names(value)
            except ValueError:
                raise bad(key, "job names such as [prep] or prep,data") from None
            for dep in out[key]:
                check_text(dep, "a job name in after", where)
        elif key == "cwd":
            if not isinstance(value, str) or not value:
                raise bad(key, "a directory path")
            out[key] = check_text(value, "cwd", where)
        elif key == "env":
            items = _pairs(value)
            if items is None or not all(isinstance(k, str) for k, _ in items):
                raise bad(key, "a mapping of variable names to values, or NAME=VALUE "
                               "words such as 'A=1 B=2'")
            out[key] = tuple(_env_item(k, v, where) for k, v in items)
        elif key == "resources":
            items = _pairs(value)
            if items is None:
                raise bad(key, "a mapping such as {foo: 5}, or NAME=N words such as "
                               "'foo=5 bar=1'")
            for rname, amount in items:
                resources[str(rname)] = _resource(str(rname), amount, where)
        elif key == "memory":
            try:
                resources[key] = parse_amount(value)
            except ValueError:
                raise bad(key, "a size per GPU such as 20G") from None
        elif near_miss(str(key), KNOWN):        # a typo never becomes a resource
            raise InputError(f"unknown job option {key!r}: did you mean "
                             f"{near_miss(str(key), KNOWN)!r}?", where)
        elif bare_resources and _NAME.match(key):
            resources[key] = _resource(key, value, where)
        else:
            raise InputError(f"unknown job option {key!r} (known: {', '.join(KNOWN)}"
                             + (", or name=number for a resource)" if bare_resources else
                                "; resources go under 'resources:')"), where)
    if resources:
        out["resources"] = tuple(sorted(resources.items()))
    return out


def _pairs(value: Any) -> Optional[List[Tuple[Any, Any]]]:
    """(name, value) pairs of a mapping, of ``'A=1 B=2'`` (shell words) or of a list of
    ``NAME=VALUE`` strings; None if ``value`` is none of these."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError:
            return None
    elif isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value):
        words = list(value)
    else:
        return None
    pairs = [w.partition("=") for w in words]
    if not all(eq for _, eq, _ in pairs):
        return None
    return [(name, text) for name, _, text in pairs]


def _env_item(name: str, value: Any, where: str) -> Tuple[str, str]:
    if not name or "=" in name:
        raise InputError(f"bad variable name {name!r} in env: expected a non-empty name "
                         f"without '='", where)
    check_text(name, f"the name of env variable {name!r}", where)
    text = "" if value is None else str(value)
    return name, check_text(text, f"env variable {name}", where)


def _resource(name: str, amount: Any, where: str) -> float:
    if not _NAME.match(name):
        raise InputError(f"bad resource name {name!r}", where)
    try:
        return parse_amount(amount)
    except ValueError:
        raise InputError(f"bad amount {amount!r} for resource {name!r}: expected a number "
                         f"of 0 or more (sizes such as 20G allowed)", where) from None
