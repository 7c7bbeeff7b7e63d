"""Compact columns for the report's embedded data, so that a sweep of 100,000 jobs makes a
page of a few megabytes with every attempt in it (``report.js`` unpacks them; ``unpack``
here does the same, for tests and scripts).

A packed column is one of:

- a JSON list: the values as they are;
- ``{"n": N, "c": V}``: N values, all V;
- ``{"n": N, "c": V, "i": [...], "v": [...]}``: N values, V except at the listed
  positions (given as differences from the previous position) which hold ``v``;
- ``{"d": [...]}``: integers given as differences from the previous value (the first
  from 0): short for sorted or slowly changing columns.

Text columns (job names, commands) are ``{"k": [...], "p": [[...], ...], "n": [...]}``: each
text is a pattern (``p[k[i]]``, the literal parts between its numbers) and its numbers
(in ``n``, packed, in order; each the difference from the same number of the previous
text with the same pattern). Numbers written with a leading zero or more than 15 digits
stay in the pattern, so every text comes back exactly.
"""
import re
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

_NUMBERS = re.compile(r"(\d+)")
_KEPT = re.compile(r"(?<!\d)0\d|\d{16}")    # numbers that stay in the pattern
SPARSE = 0.25           # at most this share of values differ from the common one


def column(values: Sequence[Any], delta: bool = False) -> Any:
    """``values`` packed (see the module's docstring); ``delta``: integers that are
    better given as differences."""
    n = len(values)
    if n == 0:
        return []
    common, count = Counter(values).most_common(1)[0]
    if count == n:
        return {"n": n, "c": common}
    if n - count <= SPARSE * n:
        at: List[int] = []
        vals: List[Any] = []
        last = 0
        for i, v in enumerate(values):
            if v != common:
                at.append(i - last)
                vals.append(v)
                last = i
        return {"n": n, "c": common, "i": at, "v": vals}
    if delta:
        out: List[int] = []
        prev = 0
        for v in values:
            out.append(v - prev)
            prev = v
        return {"d": out}
    return list(values)


def expand(packed: Any) -> List[Any]:
    """The values of a packed column."""
    if isinstance(packed, list):
        return packed
    if "d" in packed:
        out, prev = [], 0
        for d in packed["d"]:
            prev += d
            out.append(prev)
        return out
    values = [packed["c"]] * packed["n"]
    pos = 0
    for step, v in zip(packed.get("i", []), packed.get("v", [])):
        pos += step
        values[pos] = v
    return values


def texts(values: Sequence[str]) -> Dict[str, Any]:
    """A text column packed as patterns and numbers (see the module's docstring)."""
    patterns: Dict[Tuple[str, ...], int] = {}
    last: Dict[int, List[int]] = {}
    keys: List[int] = []
    numbers: List[int] = []
    split, odd = _NUMBERS.split, _KEPT.search
    for text in values:
        parts = split(text)
        if len(parts) == 1:
            literal: Tuple[str, ...] = (text,)
            nums: List[int] = []
        elif odd(text) is None:             # every number can be one
            literal = tuple(parts[0::2])
            nums = [int(d) for d in parts[1::2]]
        else:
            lits: List[str] = [parts[0]]
            nums = []
            for j in range(1, len(parts), 2):
                digits = parts[j]
                if (digits[0] == "0" and len(digits) > 1) or len(digits) > 15:
                    lits[-1] += digits + parts[j + 1]
                else:
                    nums.append(int(digits))
                    lits.append(parts[j + 1])
            literal = tuple(lits)
        k = patterns.get(literal)
        if k is None:
            k = patterns[literal] = len(patterns)
        keys.append(k)
        if nums:
            prev = last.get(k)
            numbers.extend(nums if prev is None else [a - b for a, b in zip(nums, prev)])
            last[k] = nums
    return {"k": column(keys), "p": [list(p) for p in patterns], "n": column(numbers)}


def expand_texts(packed: Dict[str, Any]) -> List[str]:
    """The texts of a packed text column."""
    patterns = packed["p"]
    numbers = iter(expand(packed["n"]))
    last: Dict[int, List[int]] = {}
    out = []
    for k in expand(packed["k"]):
        lits = patterns[k]
        if len(lits) == 1:
            out.append(lits[0])
            continue
        prev: Optional[List[int]] = last.get(k)
        nums = [next(numbers) + (0 if prev is None else prev[j]) for j in range(len(lits) - 1)]
        last[k] = nums
        out.append(lits[0] + "".join(str(x) + lit for x, lit in zip(nums, lits[1:])))
    return out


BAR_COLUMNS = ("st", "att", "x", "sig", "gpus", "flags")
USAGE_COLUMNS = ("cpu", "rss", "gmem", "gutil")    # what each job's latest attempt used


def unpack(data: Dict[str, Any]) -> Dict[str, Any]:
    """The page's data with its columns expanded, as lists: ``bars`` (``lane``, ``s`` and
    ``e`` in seconds since ``t0``, ...) and ``jobs`` (``id``, ``name``, ``cmd``, ...)."""
    out = dict(data)
    packed = data["bars"]
    bars: Dict[str, List[Any]] = {"lane": [lane for lane, n in enumerate(packed["perLane"])
                                           for _ in range(n)]}
    starts = expand(packed["s"])
    bars["s"] = [ms / 1000 for ms in starts]
    bars["e"] = [(ms + d) / 1000 for ms, d in zip(starts, expand(packed["d"]))]
    bars["job"] = expand(packed["job"])
    for key in BAR_COLUMNS:
        bars[key] = expand(packed[key])
    out["bars"] = bars
    jobs = data["jobs"]
    out["jobs"] = {"id": expand(jobs["id"]), "name": expand_texts(jobs["name"]),
                   "cmd": expand_texts(jobs["cmd"]), "attempts": expand(jobs["attempts"]),
                   **{key: expand(jobs[key]) for key in USAGE_COLUMNS if key in jobs}}
    return out
